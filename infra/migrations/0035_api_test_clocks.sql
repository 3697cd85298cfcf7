-- 0035: test clocks (issue 10, item 7; producers/api/test_clocks.py, docs/webhooks.md "Test clocks").
--
-- A test clock is a tenant's frozen time. Accounts opened on it live on it: the payments they make are
-- dated by the clock, sent as the clock's own producer (`kp-api-clock-<id>`), so the ledger keeps one
-- clock per (partition, test clock) and no other producer's clock ever moves when one is advanced.
CREATE TABLE IF NOT EXISTS api_test_clocks (
    id          text PRIMARY KEY CONSTRAINT api_test_clocks_id_shape CHECK (id ~ '^clk_[0-9a-f]{32}$'),
    tenant_id   text NOT NULL REFERENCES api_tenants (id),
    name        text CONSTRAINT api_test_clocks_name_length CHECK (char_length(name) <= 100),
    frozen_time timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_test_clocks_tenant_id_key UNIQUE (tenant_id, id)
);

-- The account's clock: the composite key makes another tenant's clock impossible to name.
ALTER TABLE api_accounts ADD COLUMN IF NOT EXISTS test_clock_id text;
ALTER TABLE api_accounts DROP CONSTRAINT IF EXISTS api_accounts_test_clock_fkey;
ALTER TABLE api_accounts ADD CONSTRAINT api_accounts_test_clock_fkey
    FOREIGN KEY (tenant_id, test_clock_id) REFERENCES api_test_clocks (tenant_id, id);

-- Scheduled work on a clock (an authorisation's expiry): `due_at` is 'infinity' until an advance of
-- the clock passes `clock_due_at`, which sets `due_at` to the advance's wall time; the scheduler
-- itself only ever compares `due_at` with now().
ALTER TABLE api_scheduled ADD COLUMN IF NOT EXISTS test_clock_id text REFERENCES api_test_clocks (id);
ALTER TABLE api_scheduled ADD COLUMN IF NOT EXISTS clock_due_at timestamptz;
ALTER TABLE api_scheduled DROP CONSTRAINT IF EXISTS api_scheduled_clock_due;
ALTER TABLE api_scheduled ADD CONSTRAINT api_scheduled_clock_due
    CHECK ((test_clock_id IS NULL) = (clock_due_at IS NULL));
CREATE INDEX IF NOT EXISTS api_scheduled_clock ON api_scheduled (test_clock_id, clock_due_at)
    WHERE test_clock_id IS NOT NULL;
