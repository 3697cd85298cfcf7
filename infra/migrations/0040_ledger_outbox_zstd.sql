-- 0040: the ledger's outbox stores a batch's outcomes zstd-compressed (consumers/ledger/blobs.py):
-- about an eighth of the bytes, chunks and WAL per batch. payloads_bytes is the uncompressed size,
-- which the decoder needs; NULL means the row was stored plain (every row written before this).
ALTER TABLE ledger_outbox ADD COLUMN IF NOT EXISTS payloads_bytes integer CHECK (payloads_bytes > 0);
