-- 0020: the HTTP API's tenants (issue 9): one row per startup holding a sandbox secret key.
-- The key itself is never stored: only its SHA-256 (looked up on every request) and its first
-- 12 characters, so `kpsandbox tenants list` can show which key is which.
CREATE TABLE IF NOT EXISTS api_tenants (
    id         text PRIMARY KEY
               CONSTRAINT api_tenants_id_shape CHECK (id ~ '^ten_[0-9a-f]{16}$'),
    -- A name is also how a tenant is revoked, so it can never be mistaken for an id.
    name       text NOT NULL
               CONSTRAINT api_tenants_name_key UNIQUE
               CONSTRAINT api_tenants_name_shape CHECK (
                   char_length(name) BETWEEN 1 AND 64
                   AND name ~ '^[A-Za-z0-9]([A-Za-z0-9._ -]*[A-Za-z0-9])?$'
                   AND name !~ '^ten_[0-9a-f]{16}$'
               ),
    key_prefix text NOT NULL CONSTRAINT api_tenants_key_prefix_shape CHECK (char_length(key_prefix) = 12),
    key_hash   bytea NOT NULL
               CONSTRAINT api_tenants_key_hash_key UNIQUE
               CONSTRAINT api_tenants_key_hash_shape CHECK (octet_length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
               CONSTRAINT api_tenants_revoked_after_created CHECK (revoked_at >= created_at)
);
