-- 0002: the double-entry ledger (issue 3). TigerBeetle's vocabulary: accounts carry
-- debits/credits, pending and posted; transfers are immutable rows. See docs/ledger.md.

CREATE TABLE IF NOT EXISTS ledger_accounts (
    id              text PRIMARY KEY,
    kind            text NOT NULL,
    flags           integer NOT NULL DEFAULT 0,   -- 2 = debits_must_not_exceed_credits
    debits_pending  bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted   bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted  bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    opened_at       timestamptz NOT NULL          -- simulated time of account.opened
);

-- Immutable: rows are only ever inserted. Post, void and expiry are new rows naming pending_id.
CREATE TABLE IF NOT EXISTS ledger_transfers (
    id                uuid PRIMARY KEY,           -- the request's event_id (idempotency key)
    debit_account_id  text NOT NULL,
    credit_account_id text NOT NULL,
    amount            bigint NOT NULL CHECK (amount >= 0),  -- paisa
    currency          text NOT NULL,
    code              text NOT NULL,              -- payment kind, cash_in, cash_out
    rail              text,
    pending_id        uuid,
    timeout_seconds   integer NOT NULL DEFAULT 0,
    flags             integer NOT NULL,           -- 1 pending, 2 post, 4 void, 8 expire
    occurred_at       timestamptz NOT NULL,       -- simulated time carried by the event
    reference         text
);

-- Where each two-phase transfer stands; the one mutable row per pending transfer.
CREATE TABLE IF NOT EXISTS ledger_pending (
    id                uuid PRIMARY KEY,
    debit_account_id  text NOT NULL,
    credit_account_id text NOT NULL,
    amount            bigint NOT NULL,
    code              text NOT NULL,
    expires_at        timestamptz,                -- NULL: never expires
    source_partition  integer NOT NULL,           -- whose simulated clock expires it
    state             text NOT NULL CHECK (state IN ('pending', 'posted', 'voided', 'expired'))
);
CREATE INDEX IF NOT EXISTS ledger_pending_due
    ON ledger_pending (source_partition, expires_at)
    WHERE state = 'pending' AND expires_at IS NOT NULL;

-- One row per distinct request: its decided outcome. The idempotent-consumer tracking row.
CREATE TABLE IF NOT EXISTS ledger_requests (
    id               uuid PRIMARY KEY,            -- request event_id
    request_type     text NOT NULL,
    result           text NOT NULL,
    transfer_status  text,                        -- settled only
    amount           bigint NOT NULL,
    fingerprint      bytea NOT NULL,              -- hash of every field but amount
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);

-- Consumed positions, written in the same transaction as the postings they produced.
CREATE TABLE IF NOT EXISTS ledger_offsets (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint NOT NULL,
    clock          timestamptz,                   -- the partition's simulated clock (max occurred_at)
    messages       bigint NOT NULL DEFAULT 0,
    duplicates     bigint NOT NULL DEFAULT 0,
    dead_lettered  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (consumer_group, topic, partition)
);

-- Transactional outbox: one row per settled batch, deleted once Kafka acknowledged every outcome.
CREATE TABLE IF NOT EXISTS ledger_outbox (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    keys       text[] NOT NULL,
    payloads   bytea[] NOT NULL
);
