-- 0003: the ledger's outbox keeps each batch as two blobs (newline-separated keys, and
-- newline-separated JSON outcomes, which never contain a raw newline): one value to encode
-- per batch instead of thousands of array elements. Rows waiting in the old shape carry over.
CREATE TABLE IF NOT EXISTS ledger_outbox_blobs (
    id         bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    messages   integer NOT NULL CHECK (messages > 0),
    keys       text NOT NULL,
    payloads   bytea NOT NULL
);
INSERT INTO ledger_outbox_blobs (created_at, messages, keys, payloads)
SELECT o.created_at, cardinality(o.keys), array_to_string(o.keys, E'\n'),
       (SELECT string_agg(u.p, '\x0a'::bytea ORDER BY u.n) FROM unnest(o.payloads) WITH ORDINALITY AS u(p, n))
FROM ledger_outbox AS o
WHERE cardinality(o.keys) > 0
ORDER BY o.id;
DROP TABLE ledger_outbox;
ALTER TABLE ledger_outbox_blobs RENAME TO ledger_outbox;
ALTER SEQUENCE ledger_outbox_blobs_id_seq RENAME TO ledger_outbox_id_seq;
-- Outcome blobs live for milliseconds: store them out of line without compressing them.
ALTER TABLE ledger_outbox ALTER COLUMN payloads SET STORAGE EXTERNAL;
ALTER TABLE ledger_outbox ALTER COLUMN keys SET STORAGE EXTERNAL;
