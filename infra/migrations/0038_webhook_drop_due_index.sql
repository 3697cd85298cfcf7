-- 0038: the claim's per-endpoint probe must walk api_webhook_deliveries_endpoint_due (0036). Once the
-- table had statistics, the planner took api_webhook_deliveries_due (0029) instead, filtering each
-- endpoint's rows out of everyone's (ANALYZE of a 20,000-delivery backlog: 8% fewer deliveries/s in
-- bench/webhooks.py (a)). Nothing else orders by next_attempt_at across endpoints (the backlog gauge
-- counts through either), and every delivery written no longer pays for this index.
DROP INDEX IF EXISTS api_webhook_deliveries_due;
