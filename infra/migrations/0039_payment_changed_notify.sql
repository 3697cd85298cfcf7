-- 0039: a change of a payment's status notifies channel kpsandbox_payment_changed with the payment's id
-- when its transaction commits, so a request waiting on it (GET /v1/payments/{id}?wait=N) answers at once
-- instead of at its next poll (producers/api/payment_changes.py). Only the API's payments are in this
-- table; the simulation's traffic never touches it. PostgreSQL folds equal notifications of one
-- transaction into one.
CREATE OR REPLACE FUNCTION api_payments_notify_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kpsandbox_payment_changed', NEW.id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS api_payments_changed_notify ON api_payments;
CREATE TRIGGER api_payments_changed_notify
    AFTER UPDATE OF status ON api_payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION api_payments_notify_changed();
