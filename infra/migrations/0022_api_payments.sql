-- 0022: payments and top-ups made through the HTTP API (issue 9), their status as the ledger
-- decided it, and the views consumer's positions on the outcomes topic.
--
-- The API writes a row with status 'processing' and the id of the request it published
-- (`awaiting_event_id`); the views consumer (consumers/views) finds the row by the outcome's
-- request_event_id and moves the status on, writing its offsets in the same transaction.

-- The tenant's sandbox agent: one agent account per tenant, opened at its first top-up. Agents
-- may overdraw in the ledger (they bring cash in), so its float never runs out.
CREATE TABLE IF NOT EXISTS api_sandbox_agents (
    tenant_id  text PRIMARY KEY REFERENCES api_tenants (id),
    account_id text NOT NULL UNIQUE CONSTRAINT api_sandbox_agents_id_shape CHECK (account_id ~ '^acc_[0-9a-f]{32}$'),
    announced  boolean NOT NULL DEFAULT false,  -- its account.opened was acknowledged by Kafka
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_payments (
    id                text PRIMARY KEY CONSTRAINT api_payments_id_shape CHECK (id ~ '^pay_[0-9a-f]{32}$'),
    tenant_id         text NOT NULL REFERENCES api_tenants (id),
    request_event_id  uuid NOT NULL UNIQUE,  -- the payment.requested
    awaiting_event_id uuid,                  -- the request whose outcome the payment waits for (NULL: none)
    payer             text NOT NULL REFERENCES api_accounts (id),
    payee             text NOT NULL REFERENCES api_accounts (id),
    amount            bigint NOT NULL CONSTRAINT api_payments_amount_positive CHECK (amount > 0),
    amount_captured   bigint NOT NULL DEFAULT 0,
    kind              text NOT NULL CONSTRAINT api_payments_kind CHECK (kind IN ('p2p', 'p2m', 'bill', 'ecommerce')),
    capture_method    text NOT NULL CONSTRAINT api_payments_capture_method CHECK (capture_method IN ('automatic', 'manual')),
    expires_at        timestamptz,
    status            text NOT NULL DEFAULT 'processing' CONSTRAINT api_payments_status CHECK (
                          status IN ('processing', 'requires_capture', 'succeeded', 'failed', 'canceled', 'expired')),
    failure_code      text,
    failure_message   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_payments_parties_differ CHECK (payer <> payee),
    CONSTRAINT api_payments_captured_bound CHECK (amount_captured BETWEEN 0 AND amount),
    CONSTRAINT api_payments_manual_expiry CHECK ((capture_method = 'manual') = (expires_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS api_payments_tenant_created ON api_payments (tenant_id, created_at DESC, id);
CREATE UNIQUE INDEX IF NOT EXISTS api_payments_awaiting ON api_payments (awaiting_event_id);

-- Captures and cancels of manual payments: each is its own ledger request (post or void).
CREATE TABLE IF NOT EXISTS api_payment_actions (
    request_event_id uuid PRIMARY KEY,
    payment_id       text NOT NULL REFERENCES api_payments (id),
    action           text NOT NULL CONSTRAINT api_payment_actions_action CHECK (action IN ('capture', 'cancel')),
    amount           bigint,  -- a partial capture's amount; NULL: the whole authorisation
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_payment_actions_payment ON api_payment_actions (payment_id);

CREATE TABLE IF NOT EXISTS api_top_ups (
    id               text PRIMARY KEY CONSTRAINT api_top_ups_id_shape CHECK (id ~ '^tu_[0-9a-f]{32}$'),
    tenant_id        text NOT NULL REFERENCES api_tenants (id),
    request_event_id uuid NOT NULL UNIQUE,  -- the cash.in
    account          text NOT NULL REFERENCES api_accounts (id),
    agent_account    text NOT NULL REFERENCES api_sandbox_agents (account_id),
    amount           bigint NOT NULL CONSTRAINT api_top_ups_amount_positive CHECK (amount > 0),
    status           text NOT NULL DEFAULT 'processing'
                     CONSTRAINT api_top_ups_status CHECK (status IN ('processing', 'succeeded', 'failed')),
    failure_code     text,
    failure_message  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The views consumer's next offset per outcomes partition, written in the same transaction as
-- the status changes it made (the ledger's exactly-once pattern, see ledger_offsets).
CREATE TABLE IF NOT EXISTS api_views_offsets (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint NOT NULL,
    applied        bigint NOT NULL DEFAULT 0,  -- outcomes that changed an API object
    PRIMARY KEY (consumer_group, topic, partition)
);
