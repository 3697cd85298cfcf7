-- 0004: the ledger's clock per (partition, producer), expiry outcomes, dead letters in the outbox.
-- See docs/ledger.md ("The clock" and "Dead letters").

-- One simulated clock per producer on each source partition: a producer's timestamps only
-- ever expire that producer's own authorisations.
CREATE TABLE IF NOT EXISTS ledger_clocks (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    producer       text NOT NULL,
    clock          timestamptz NOT NULL,     -- latest accepted occurred_at of this producer here
    PRIMARY KEY (consumer_group, topic, partition, producer)
);

-- Whose clock expires a pending transfer, and what its expiry outcome repeats of the request.
-- Rows written before this migration have producer '' and expire by nobody's clock but a post.
ALTER TABLE ledger_pending ADD COLUMN IF NOT EXISTS source_producer text NOT NULL DEFAULT '';
ALTER TABLE ledger_pending ADD COLUMN IF NOT EXISTS correlation_id uuid;
ALTER TABLE ledger_pending ADD COLUMN IF NOT EXISTS requested_at timestamptz;
ALTER TABLE ledger_pending ADD COLUMN IF NOT EXISTS rail text;
DROP INDEX IF EXISTS ledger_pending_due;
CREATE INDEX IF NOT EXISTS ledger_pending_due_by_producer
    ON ledger_pending (source_partition, source_producer, expires_at)
    WHERE state = 'pending' AND expires_at IS NOT NULL;

-- Dead letters are committed with the offsets that skip them and published by the relay after
-- the commit, exactly like outcomes; a batch of poison only has no outcomes.
ALTER TABLE ledger_outbox ADD COLUMN IF NOT EXISTS dead_letters jsonb;
ALTER TABLE ledger_outbox DROP CONSTRAINT IF EXISTS ledger_outbox_blobs_messages_check;
ALTER TABLE ledger_outbox ADD CONSTRAINT ledger_outbox_has_messages
    CHECK (messages > 0 OR dead_letters IS NOT NULL);
