"""The API's read models, kept from the ledger's outcomes: payments', top-ups' and refunds' statuses (issue 9)."""
