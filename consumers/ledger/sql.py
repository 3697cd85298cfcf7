"""Every SQL statement of the ledger, as named constants. Set-based: arrays in, one statement per step."""

from __future__ import annotations

from typing import Final

# -- accounts ----------------------------------------------------------------------------------
INSERT_ACCOUNTS: Final = """
INSERT INTO ledger_accounts (id, kind, flags, opened_at, tier)
SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[])
ON CONFLICT (id) DO NOTHING
"""

# Who owns the accounts a tenant's own Kafka requests name (accounts opened through the API).
SELECT_OWNERS: Final = "SELECT id, tenant_id FROM api_accounts WHERE id = ANY($1::text[])"

# Balances first (in Account's field order), then the tier and its windows (migration 0005).
LOCK_ACCOUNTS: Final = """
SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted,
       tier, debits_window_on, debits_day, debits_month, debits_year,
       credits_window_on, credits_day, credits_month, credits_year
FROM ledger_accounts WHERE id = ANY($1::text[])
ORDER BY id FOR UPDATE
"""

# A tiered account's running totals, written as they stand after the batch (its row is locked).
UPDATE_WINDOWS: Final = """
UPDATE ledger_accounts AS a SET
    debits_window_on  = w.debits_on,
    debits_day        = w.debits_day,
    debits_month      = w.debits_month,
    debits_year       = w.debits_year,
    credits_window_on = w.credits_on,
    credits_day       = w.credits_day,
    credits_month     = w.credits_month,
    credits_year      = w.credits_year
FROM unnest($1::text[], $2::date[], $3::bigint[], $4::bigint[], $5::bigint[],
            $6::date[], $7::bigint[], $8::bigint[], $9::bigint[])
    AS w(id, debits_on, debits_day, debits_month, debits_year, credits_on, credits_day, credits_month, credits_year)
WHERE a.id = w.id
"""

# The hot-account technique: one UPDATE per account per batch, from aggregated deltas.
APPLY_DELTAS: Final = """
UPDATE ledger_accounts AS a SET
    debits_pending  = a.debits_pending  + d.dp,
    debits_posted   = a.debits_posted   + d.dpo,
    credits_pending = a.credits_pending + d.cp,
    credits_posted  = a.credits_posted  + d.cpo
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(id, dp, dpo, cp, cpo)
WHERE a.id = d.id
"""

# -- requests and pending transfers ------------------------------------------------------------
SELECT_PRIOR_REQUESTS: Final = """
SELECT id, request_type, result, transfer_status, amount, fingerprint, source_partition, source_offset
FROM ledger_requests WHERE id = ANY($1::uuid[])
"""

PENDING_SELECT: Final = """
SELECT p.id, p.debit_account_id, p.credit_account_id, p.amount, p.code, p.expires_at, p.source_partition,
       p.state, p.source_producer, p.correlation_id, p.requested_at, p.rail
FROM ledger_pending AS p"""

LOCK_PENDING_BY_ID: Final = (
    PENDING_SELECT
    + """
WHERE p.id = ANY($1::uuid[])
ORDER BY p.id FOR UPDATE
"""
)

# Pending transfers that the batch's clocks will reach, per (source partition, producer); the
# earliest first, at most $4 per batch (the rest expire in the partition's next batches).
LOCK_PENDING_DUE: Final = (
    PENDING_SELECT
    + """
JOIN unnest($1::int[], $2::text[], $3::timestamptz[]) AS c(part, producer, clock)
  ON p.source_partition = c.part AND p.source_producer = c.producer
 AND p.state = 'pending' AND p.expires_at <= c.clock
ORDER BY p.expires_at, p.id LIMIT $4 FOR UPDATE OF p
"""
)

UPDATE_PENDING_STATES: Final = """
UPDATE ledger_pending AS p SET state = s.state
FROM unnest($1::uuid[], $2::text[]) AS s(id, state)
WHERE p.id = s.id AND p.state = 'pending'
"""

TRANSFER_COLUMNS: Final = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "code",
    "rail",
    "pending_id",
    "timeout_seconds",
    "flags",
    "occurred_at",
    "reference",
)
REQUEST_COLUMNS: Final = (
    "id",
    "request_type",
    "result",
    "transfer_status",
    "amount",
    "fingerprint",
    "source_partition",
    "source_offset",
)
PENDING_COLUMNS: Final = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "code",
    "expires_at",
    "source_partition",
    "state",
    "source_producer",
    "correlation_id",
    "requested_at",
    "rail",
)

# -- offsets -----------------------------------------------------------------------------------
ENSURE_OFFSETS: Final = """
INSERT INTO ledger_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, $2, part, start FROM unnest($3::int[], $4::bigint[]) AS s(part, start)
ON CONFLICT DO NOTHING
"""

SELECT_OFFSETS: Final = """
SELECT partition, next_offset, clock FROM ledger_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])
"""

# Fencing: lock the batch's partitions and read where the database says they stand.
LOCK_OFFSETS: Final = """
SELECT partition, next_offset, clock FROM ledger_offsets
WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])
ORDER BY partition FOR UPDATE
"""

ADVANCE_OFFSETS: Final = """
UPDATE ledger_offsets AS o SET
    next_offset   = a.next_offset,
    clock         = GREATEST(o.clock, a.clock),
    messages      = o.messages + a.messages,
    duplicates    = o.duplicates + a.duplicates,
    dead_lettered = o.dead_lettered + a.dead_lettered
FROM unnest($3::int[], $4::bigint[], $5::timestamptz[], $6::bigint[], $7::bigint[], $8::bigint[])
    AS a(part, next_offset, clock, messages, duplicates, dead_lettered)
WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = a.part
"""

# Producers' clocks on the batch's partitions (their offset rows are locked: no one else writes).
SELECT_CLOCKS: Final = """
SELECT partition, producer, clock FROM ledger_clocks
WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[])
"""

UPSERT_CLOCKS: Final = """
INSERT INTO ledger_clocks (consumer_group, topic, partition, producer, clock)
SELECT $1, $2, part, producer, clock FROM unnest($3::int[], $4::text[], $5::timestamptz[]) AS c(part, producer, clock)
ON CONFLICT (consumer_group, topic, partition, producer)
DO UPDATE SET clock = GREATEST(ledger_clocks.clock, EXCLUDED.clock)
"""

# Accounts are read by every process (not by group), so offsets only ever move forward.
ADVANCE_ACCOUNT_OFFSETS: Final = """
INSERT INTO ledger_offsets (consumer_group, topic, partition, next_offset)
SELECT $1, $2, part, next_offset FROM unnest($3::int[], $4::bigint[]) AS a(part, next_offset)
ON CONFLICT (consumer_group, topic, partition)
DO UPDATE SET next_offset = GREATEST(ledger_offsets.next_offset, EXCLUDED.next_offset)
"""

# -- outbox ------------------------------------------------------------------------------------
# One row per batch: newline-separated keys and JSON values (see migration 0003), the values
# zstd-compressed with their uncompressed size (migration 0040, consumers/ledger/blobs.py).
# Dead letters ride along as JSON (rare; see migration 0004).
INSERT_OUTBOX: Final = """
INSERT INTO ledger_outbox (messages, keys, payloads, payloads_bytes, dead_letters)
VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING id
"""
DELETE_OUTBOX: Final = "DELETE FROM ledger_outbox WHERE id = $1"
OUTBOX_DEPTH: Final = """
SELECT count(*) AS rows, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
FROM ledger_outbox
"""
LOCK_OUTBOX_BACKLOG: Final = """
SELECT id, keys, payloads, payloads_bytes, dead_letters::text AS dead_letters FROM ledger_outbox
WHERE created_at <= now() - make_interval(secs => $1)
ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""
