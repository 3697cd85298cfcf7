"""Ledger settlement: a double-entry ledger in PostgreSQL with exactly-once effects from Kafka."""
