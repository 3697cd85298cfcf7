-- 0037: every statement that queues webhook deliveries (an event's, a resend's, a replay's) notifies
-- channel kpsandbox_webhooks_due when its transaction commits, so the dispatcher claims them at once
-- instead of at its next poll (consumers/webhooks/dispatcher.py). PostgreSQL sends one notification per
-- transaction however many statements raise it (same channel, same empty payload).
CREATE OR REPLACE FUNCTION api_webhook_deliveries_notify_due() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kpsandbox_webhooks_due', '');
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS api_webhook_deliveries_due_notify ON api_webhook_deliveries;
CREATE TRIGGER api_webhook_deliveries_due_notify
    AFTER INSERT ON api_webhook_deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION api_webhook_deliveries_notify_due();
