"""The API's read models, kept from the ledger's outcomes: payments' and top-ups' statuses (issue 9)."""
