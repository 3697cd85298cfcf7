-- 0026: magic values (issue 9, item 6; schemas/api/magic.py) and the API's scheduled requests.
--
-- Each magic payee alias names one sandbox-made account of the tenant, opened at first use: an
-- ordinary api_accounts row whose alias token is the magic number's, marked with its behaviour so
-- it cannot be topped up or pay, and so listings can leave it out.
ALTER TABLE api_accounts ADD COLUMN IF NOT EXISTS magic text
    CONSTRAINT api_accounts_magic CHECK (
        magic IN ('account_not_found', 'insufficient_funds', 'payee_limit_exceeded', 'delayed_success', 'no_answer'));
CREATE UNIQUE INDEX IF NOT EXISTS api_accounts_tenant_magic ON api_accounts (tenant_id, magic) WHERE magic IS NOT NULL;

-- A citizen wallet's SBP branchless-banking tier (schemas/accounts.py TIER_LIMITS), as published in
-- its account.opened; the ledger enforces its limits. NULL for bank and merchant accounts.
ALTER TABLE api_accounts ADD COLUMN IF NOT EXISTS tier text
    CONSTRAINT api_accounts_tier CHECK (tier IN ('level_0', 'level_1', 'level_2', 'test_capped'));

-- What the API must do later for a payment, owned by the API's scheduler (producers/api/scheduler.py):
--   publish  — send the stored request now (a delayed-success payment);
--   time_out — give up on a payment nobody answers (failed / timed_out) if it still waits;
--   expire   — an authorisation's expiry time has come: send the ledger a release dated at that time,
--              which moves the API's clock on the payer's partition, so the ledger expires it.
CREATE TABLE IF NOT EXISTS api_scheduled (
    payment_id text NOT NULL REFERENCES api_payments (id) ON DELETE CASCADE,
    action     text NOT NULL CONSTRAINT api_scheduled_action CHECK (action IN ('publish', 'time_out', 'expire')),
    due_at     timestamptz NOT NULL,
    event      text,  -- the request to publish, as JSON (publish and expire)
    PRIMARY KEY (payment_id, action)
);
CREATE INDEX IF NOT EXISTS api_scheduled_due ON api_scheduled (due_at);
