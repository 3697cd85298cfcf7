-- 0023: Idempotency-Key on every POST of the HTTP API (issue 9, item 5). One row per tenant and
-- key, claimed ('in_progress') in its own short transaction before the request's work, and
-- completed ('done') with the response's status, media type and body afterwards. A request that
-- ends in a 5xx deletes its row, so a retry can proceed. Rows older than 24 hours count as absent
-- and are deleted lazily when their key is used again.
CREATE TABLE IF NOT EXISTS api_idempotency (
    tenant_id    text NOT NULL REFERENCES api_tenants (id),
    key          text NOT NULL CONSTRAINT api_idempotency_key_shape CHECK (key ~ '^[ -~]{1,255}$'),
    request_hash bytea NOT NULL CONSTRAINT api_idempotency_request_hash_shape CHECK (octet_length(request_hash) = 32),
    state        text NOT NULL DEFAULT 'in_progress' CONSTRAINT api_idempotency_state CHECK (state IN ('in_progress', 'done')),
    status_code  integer,
    media_type   text,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key),
    CONSTRAINT api_idempotency_done_has_response CHECK (
        state = 'in_progress' OR (status_code IS NOT NULL AND media_type IS NOT NULL AND body IS NOT NULL)
    )
);

CREATE INDEX IF NOT EXISTS api_idempotency_created_at ON api_idempotency (created_at);
