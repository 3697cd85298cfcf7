-- 0029: webhook events, their deliveries and every delivery attempt (issue 10, items 3–5).
--
-- An event is written by the views consumer (consumers/views) in the same transaction as the status
-- change it reports and the outcome offsets that made it, so an outcome applied twice makes no second
-- event. In that transaction, one delivery per enabled endpoint of the tenant subscribed to the event's
-- type is written too (pending, due now). The dispatcher (consumers/webhooks) claims due deliveries
-- with FOR UPDATE SKIP LOCKED, POSTs them, and records each attempt; a delivery ends `delivered` (2xx)
-- or `failed` (410 Gone, or the retry schedule exhausted).
CREATE TABLE IF NOT EXISTS api_events (
    id         text PRIMARY KEY CONSTRAINT api_events_id_shape CHECK (id ~ '^evt_[0-9a-f]{32}$'),
    tenant_id  text NOT NULL REFERENCES api_tenants (id),
    type       text NOT NULL,
    object_id  text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/events pages newest first, per tenant.
CREATE INDEX IF NOT EXISTS api_events_tenant_created ON api_events (tenant_id, created_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS api_webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text NOT NULL REFERENCES api_events (id) ON DELETE CASCADE,
    endpoint_id     text NOT NULL REFERENCES api_webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id       text NOT NULL REFERENCES api_tenants (id),
    status          text NOT NULL DEFAULT 'pending'
                    CONSTRAINT api_webhook_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CONSTRAINT api_webhook_deliveries_attempts CHECK (attempts >= 0),
    -- When the next attempt is due; while an attempt is in flight, when its claim lapses. NULL once ended.
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_webhook_deliveries_one_per_endpoint UNIQUE (event_id, endpoint_id),
    CONSTRAINT api_webhook_deliveries_due CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL))
);
-- The dispatcher's poll: pending deliveries in the order they fall due.
CREATE INDEX IF NOT EXISTS api_webhook_deliveries_due
    ON api_webhook_deliveries (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS api_webhook_deliveries_endpoint ON api_webhook_deliveries (endpoint_id, id DESC);

CREATE TABLE IF NOT EXISTS api_webhook_attempts (
    delivery_id     bigint NOT NULL REFERENCES api_webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer NOT NULL CONSTRAINT api_webhook_attempts_attempt CHECK (attempt >= 1),
    response_status integer,
    error           text,
    latency_ms      integer NOT NULL CONSTRAINT api_webhook_attempts_latency CHECK (latency_ms >= 0),
    response_head   text NOT NULL DEFAULT '',
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, attempt),
    CONSTRAINT api_webhook_attempts_answer CHECK ((response_status IS NULL) <> (error IS NULL))
);
