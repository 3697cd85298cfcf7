-- 0001: the sandbox's own bookkeeping. Later migrations add the ledger and metrics tables.
CREATE TABLE IF NOT EXISTS sandbox_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO sandbox_info (key, value) VALUES ('created_by', 'kpsandbox')
ON CONFLICT (key) DO NOTHING;
