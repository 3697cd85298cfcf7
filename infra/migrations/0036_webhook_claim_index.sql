-- 0036: the dispatcher's claim walks each enabled endpoint's due deliveries through this index and
-- takes only the first few (consumers/webhooks/store.py CLAIM_DUE), instead of ranking every due row
-- of every endpoint: with a backlog of 10,000 deliveries that ranking took ~190 ms per claim here.
CREATE INDEX IF NOT EXISTS api_webhook_deliveries_endpoint_due
    ON api_webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE status = 'pending';
