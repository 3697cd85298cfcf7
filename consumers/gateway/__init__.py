"""The tenant gateway: each tenant's own Kafka requests onto the ledger's requests topic, stamped.

On a secured broker a tenant may write only its own requests topic (`kp.tenant-requests.v1.<id>`,
prefixed ACLs). The gateway, the one principal that reads those topics, copies every record to
PAYMENT_REQUESTS unchanged except for the `kp-tenant` header, which it sets from the topic the
record came from (and strips if the tenant wrote one). The ledger then refuses any request of a
tenant that debits an account the tenant does not own (`payer_not_owned`) and copies the tenant's
outcomes to its own outcomes topic. Copies and offsets commit in one Kafka transaction, so every
tenant record reaches the ledger exactly once. docs/security.md has the whole picture.
"""
