-- 0005: wallet tiers and their running totals, kept with the account (issue 9, item 7).
-- See docs/ledger.md ("Limits"). Only the ledger writes these columns, in the same transaction
-- as the balances, while it holds the account's row lock.

-- The tier from account.opened; NULL: no branchless-banking limit (every account before this).
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS tier text
    CHECK (tier IN ('level_0', 'level_1', 'level_2', 'test_capped'));

-- Running totals of created transfers (paisa), separately for debits (money out) and credits
-- (money in), as of the simulated UTC date *_window_on of the last one counted; a later date
-- rolls the day, month or year total it moved past to zero. NULL date: nothing counted yet.
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS debits_window_on date;
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS debits_day bigint NOT NULL DEFAULT 0 CHECK (debits_day >= 0);
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS debits_month bigint NOT NULL DEFAULT 0 CHECK (debits_month >= 0);
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS debits_year bigint NOT NULL DEFAULT 0 CHECK (debits_year >= 0);
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS credits_window_on date;
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS credits_day bigint NOT NULL DEFAULT 0 CHECK (credits_day >= 0);
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS credits_month bigint NOT NULL DEFAULT 0 CHECK (credits_month >= 0);
ALTER TABLE ledger_accounts ADD COLUMN IF NOT EXISTS credits_year bigint NOT NULL DEFAULT 0 CHECK (credits_year >= 0);
