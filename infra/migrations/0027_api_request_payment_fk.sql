-- 0027: a request-to-pay names its payment in the transaction that stores the payment
-- (producers/api/payment_requests.py). When Kafka then refuses the payment's request, the API deletes
-- the payment row; the request's reference to it is cleared with it, and the approval taken back.
ALTER TABLE api_payment_requests DROP CONSTRAINT IF EXISTS api_payment_requests_payment_id_fkey;
ALTER TABLE api_payment_requests ADD CONSTRAINT api_payment_requests_payment_id_fkey
    FOREIGN KEY (payment_id) REFERENCES api_payments (id) ON DELETE SET NULL;
