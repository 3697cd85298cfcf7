-- 0030: more webhook events, resends and replays (issue 10, items 3 and 5).
--
-- Events the API records itself (producers/api: payment requests, accounts that opened, payments its
-- scheduler timed out) happen once per object: the partial unique index below makes a second one a
-- no-op (infra/webhook_events.py, ONCE_PER_OBJECT, is the same list), whoever observes it first.
CREATE UNIQUE INDEX IF NOT EXISTS api_events_once_per_object ON api_events (object_id, type)
    WHERE type IN ('payment.failed', 'payment_request.created', 'payment_request.approved',
                   'payment_request.declined', 'payment_request.expired', 'account.opened');

-- A delivery is the event's own (`event`, one per endpoint, made with the event), or a `resend`
-- (POST /v1/events/{id}/resend) or a `replay` (POST /v1/webhook_endpoints/{id}/replay): those are
-- new deliveries of an event that may have been delivered before, so the one-per-endpoint rule holds
-- for the event's own deliveries only.
ALTER TABLE api_webhook_deliveries ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'event'
    CONSTRAINT api_webhook_deliveries_origin CHECK (origin IN ('event', 'resend', 'replay'));
ALTER TABLE api_webhook_deliveries DROP CONSTRAINT IF EXISTS api_webhook_deliveries_one_per_endpoint;
CREATE UNIQUE INDEX IF NOT EXISTS api_webhook_deliveries_one_per_endpoint
    ON api_webhook_deliveries (event_id, endpoint_id) WHERE origin = 'event';

-- account.opened is announced once the ledger has opened the account (its ledger_accounts row
-- exists): the API's scheduler sweeps accounts not announced yet (producers/api/scheduler.py).
-- Accounts that exist before this migration and are open already count as announced (no flood of
-- old events); the ones still opening are announced when they open.
ALTER TABLE api_accounts ADD COLUMN IF NOT EXISTS opened_announced boolean NOT NULL DEFAULT true;
ALTER TABLE api_accounts ALTER COLUMN opened_announced SET DEFAULT false;
UPDATE api_accounts AS account SET opened_announced = false
WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts AS ledger WHERE ledger.id = account.id);
CREATE INDEX IF NOT EXISTS api_accounts_not_announced ON api_accounts (created_at) WHERE NOT opened_announced;

-- The scheduler's sweep of requests-to-pay whose time has passed (payment_request.expired).
CREATE INDEX IF NOT EXISTS api_payment_requests_pending_expiry ON api_payment_requests (expires_at)
    WHERE status = 'pending';

-- Replays read an endpoint's types oldest first from a point in time.
CREATE INDEX IF NOT EXISTS api_events_tenant_type_created ON api_events (tenant_id, type, created_at, id);
