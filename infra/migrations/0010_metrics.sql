-- 0010: the metrics consumer's state (issue 5). One row per consumer group and topic prefix:
-- the aggregation state (zlib JSON) and the next offset of every partition it covers, written
-- together in one statement, so a restart resumes exactly where the saved state stands.

CREATE TABLE IF NOT EXISTS metrics_state (
    consumer_group text NOT NULL,
    topic_prefix   text NOT NULL,
    state          bytea NOT NULL,               -- consumers/metrics/snapshot.py
    offsets        jsonb NOT NULL,               -- {"<topic>": {"<partition>": next_offset}}
    saved_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic_prefix)
);
