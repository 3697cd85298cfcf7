-- 0028: webhook endpoints made through the HTTP API (issue 10, item 1): where a tenant wants its
-- events POSTed, which event types, and the secret each delivery is signed with (Standard Webhooks).
--
-- The signing secret is STORED, not hashed like an API key: the dispatcher needs the secret itself to
-- compute every delivery's HMAC. It is stored sealed (AES-256-GCM under a key derived from the
-- deployment key, bound to the endpoint's id: infra/sealed_secrets.py), so only a process holding
-- both this row and `<state_dir>/secrets/token.key` can read it — the API, which only seals, and the
-- dispatcher, which opens to sign. It is never logged and is returned in full only by the create and
-- rotate_secret answers; reads show `secret_last4`.
--
-- Rotation keeps the previous secret until `previous_secret_expires_at` (24 h after the rotation):
-- until then every delivery is signed by both. A second rotation within that window drops the oldest.
--
-- `events` names the types in schemas/webhooks.py. No CHECK repeats that vocabulary here, so a new
-- event type needs no migration; the API refuses unknown names (422) before anything is stored.
-- The URL is checked by the API (http or https, no credentials, at most 2 048 characters); the
-- CHECK below is the last word on length and scheme. Reachability is never checked at creation:
-- deliveries record their failures.
CREATE TABLE IF NOT EXISTS api_webhook_endpoints (
    id                         text PRIMARY KEY
                               CONSTRAINT api_webhook_endpoints_id_shape CHECK (id ~ '^we_[0-9a-f]{32}$'),
    tenant_id                  text NOT NULL REFERENCES api_tenants (id),
    url                        text NOT NULL
                               CONSTRAINT api_webhook_endpoints_url_shape
                               CHECK (char_length(url) <= 2048 AND url ~* '^https?://[^/?#@]+'),
    events                     text[] NOT NULL
                               CONSTRAINT api_webhook_endpoints_events_count CHECK (cardinality(events) BETWEEN 1 AND 64),
    status                     text NOT NULL DEFAULT 'enabled'
                               CONSTRAINT api_webhook_endpoints_status CHECK (status IN ('enabled', 'disabled')),
    secret_sealed              bytea NOT NULL,
    secret_last4               text NOT NULL
                               CONSTRAINT api_webhook_endpoints_secret_last4_shape CHECK (char_length(secret_last4) = 4),
    previous_secret_sealed     bytea,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_webhook_endpoints_previous_secret_expires
        CHECK ((previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL))
);
-- GET /v1/webhook_endpoints pages newest first, per tenant.
CREATE INDEX IF NOT EXISTS api_webhook_endpoints_tenant_created
    ON api_webhook_endpoints (tenant_id, created_at DESC, id DESC);
