-- 0024: refunds and request-to-pay made through the HTTP API (issue 9, item 4).
--
-- Refunds: a refund of a succeeded payment reserves its amount on the payment
-- (`amount_refund_reserved`, the sum of its refunds that have not failed) in the same transaction
-- that stores the refund, while the payment's row is locked, so concurrent refunds can never
-- promise more than was captured; the CHECK below says so once more. The views consumer moves a
-- refund on from the ledger's outcome: settled → succeeded (`amount_refunded` grows), rejected →
-- failed (the reservation is released).
ALTER TABLE api_payments ADD COLUMN IF NOT EXISTS amount_refunded bigint NOT NULL DEFAULT 0;
ALTER TABLE api_payments ADD COLUMN IF NOT EXISTS amount_refund_reserved bigint NOT NULL DEFAULT 0;
ALTER TABLE api_payments ADD CONSTRAINT api_payments_refund_bound
    CHECK (0 <= amount_refunded AND amount_refunded <= amount_refund_reserved AND amount_refund_reserved <= amount_captured);

CREATE TABLE IF NOT EXISTS api_refunds (
    id               text PRIMARY KEY CONSTRAINT api_refunds_id_shape CHECK (id ~ '^re_[0-9a-f]{32}$'),
    tenant_id        text NOT NULL REFERENCES api_tenants (id),
    payment_id       text NOT NULL REFERENCES api_payments (id),
    request_event_id uuid NOT NULL UNIQUE,  -- the payment.refund_requested
    amount           bigint NOT NULL CONSTRAINT api_refunds_amount_positive CHECK (amount > 0),
    reason           text CONSTRAINT api_refunds_reason CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
    status           text NOT NULL DEFAULT 'processing'
                     CONSTRAINT api_refunds_status CHECK (status IN ('processing', 'succeeded', 'failed')),
    failure_code     text,
    failure_message  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS api_refunds_payment ON api_refunds (payment_id);
CREATE INDEX IF NOT EXISTS api_refunds_tenant_created ON api_refunds (tenant_id, created_at DESC, id);

-- Request-to-pay: the payee asks, the payer approves (a payment is made), declines, or lets it
-- expire. A pending request past its expires_at is written `expired` when it is next read or
-- acted on (no sweeper). `magic_decline`: the payer was the magic number that declines at once
-- (schemas/api/magic.py); the number itself is never stored, and no payer account is looked up.
CREATE TABLE IF NOT EXISTS api_payment_requests (
    id            text PRIMARY KEY CONSTRAINT api_payment_requests_id_shape CHECK (id ~ '^pr_[0-9a-f]{32}$'),
    tenant_id     text NOT NULL REFERENCES api_tenants (id),
    payee         text NOT NULL REFERENCES api_accounts (id),
    payer         text REFERENCES api_accounts (id),
    magic_decline boolean NOT NULL DEFAULT false,
    amount        bigint NOT NULL CONSTRAINT api_payment_requests_amount_positive CHECK (amount > 0),
    reference     text CONSTRAINT api_payment_requests_reference_length CHECK (char_length(reference) BETWEEN 1 AND 64),
    status        text NOT NULL DEFAULT 'pending'
                  CONSTRAINT api_payment_requests_status CHECK (status IN ('pending', 'approved', 'declined', 'expired')),
    expires_at    timestamptz NOT NULL,
    payment_id    text REFERENCES api_payments (id),  -- set once the approval's payment is made
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_payment_requests_parties_differ CHECK (payer <> payee),
    CONSTRAINT api_payment_requests_payer_known CHECK ((payer IS NULL) = magic_decline),
    CONSTRAINT api_payment_requests_magic_declined CHECK (NOT magic_decline OR status = 'declined'),
    CONSTRAINT api_payment_requests_payment_when_approved CHECK (payment_id IS NULL OR status = 'approved')
);
CREATE INDEX IF NOT EXISTS api_payment_requests_tenant_created ON api_payment_requests (tenant_id, created_at DESC, id);
