-- 0025: QR codes made through the HTTP API, the once-only rule of dynamic codes, and the indexes
-- behind cursor-paginated listings (issue 9, item 4; producers/api/qr_codes.py, payees.py, listings.py).

-- A QR code as the API made it: enough to serve its payload and PNG again. The payload is the
-- EMVCo text (producers/api/qr.py); paying it does not need this row (a payload describes itself),
-- but GET /v1/qr_codes/{id} does.
CREATE TABLE IF NOT EXISTS api_qr_codes (
    id          text PRIMARY KEY CONSTRAINT api_qr_codes_id_shape CHECK (id ~ '^qr_[0-9a-f]{32}$'),
    tenant_id   text NOT NULL REFERENCES api_tenants (id),
    merchant    text NOT NULL REFERENCES api_accounts (id),
    type        text NOT NULL CONSTRAINT api_qr_codes_type CHECK (type IN ('static', 'dynamic')),
    amount      bigint CONSTRAINT api_qr_codes_amount_positive CHECK (amount > 0),
    reference   text,
    bill_number text,
    payload     text NOT NULL CONSTRAINT api_qr_codes_payload_length CHECK (char_length(payload) BETWEEN 1 AND 512),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_qr_codes_dynamic_amount CHECK ((type = 'dynamic') = (amount IS NOT NULL)),
    CONSTRAINT api_qr_codes_static_no_expiry CHECK (type = 'dynamic' OR expires_at IS NULL)
);
CREATE INDEX IF NOT EXISTS api_qr_codes_tenant_created ON api_qr_codes (tenant_id, created_at DESC, id);

-- A dynamic code is one checkout: paid once. One row per (tenant, payload) naming the payment that
-- holds it now; a new payment may take it over only when that payment failed, was canceled or
-- expired (one INSERT … ON CONFLICT DO UPDATE … WHERE, so two concurrent payers cannot both win).
-- Deleting a payment (its request never reached Kafka) releases the code with it.
CREATE TABLE IF NOT EXISTS api_qr_payments (
    tenant_id      text NOT NULL REFERENCES api_tenants (id),
    payload_sha256 bytea NOT NULL CONSTRAINT api_qr_payments_hash_shape CHECK (octet_length(payload_sha256) = 32),
    payment_id     text NOT NULL UNIQUE REFERENCES api_payments (id) ON DELETE CASCADE,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, payload_sha256)
);

-- GET /v1/accounts/{id}/transfers reads the ledger's own transfers, newest first, one side at a
-- time. Partial indexes: only the API's accounts ('acc_' + 32 hex) are listed, so the simulated
-- economy's transfers (wal_, biz_, agt_ … ids) do not pay for an index they never use. The listing
-- query repeats each predicate word for word, so the planner can use the index.
CREATE INDEX IF NOT EXISTS ledger_transfers_api_debits
    ON ledger_transfers (debit_account_id, occurred_at DESC, id DESC)
    WHERE debit_account_id LIKE 'acc\_%';
CREATE INDEX IF NOT EXISTS ledger_transfers_api_credits
    ON ledger_transfers (credit_account_id, occurred_at DESC, id DESC)
    WHERE credit_account_id LIKE 'acc\_%';
