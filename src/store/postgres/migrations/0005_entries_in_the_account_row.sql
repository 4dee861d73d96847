-- The ledger entries of writes that need no other row: `atomic` writes add their counts and sums
-- to these columns in the UPDATE itself, instead of upserting a ledger shard in the same statement.
-- The account row is the row such a write locks anyway, so nothing waits longer, and a write is one
-- tuple, not two: the shard upsert inside the row lock was a third of each write's time there
-- (issue 19). An atomic write never erases another (it computes from the locked row), so it has no
-- `lost_*` to add. `/stats` adds these columns to the sum of the shards; a reset zeroes them.
ALTER TABLE racebank.accounts
    ADD COLUMN deposit_count    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN deposit_sum      numeric NOT NULL DEFAULT 0,
    ADD COLUMN withdrawal_count bigint  NOT NULL DEFAULT 0,
    ADD COLUMN withdrawal_sum   numeric NOT NULL DEFAULT 0,
    ADD COLUMN retries          bigint  NOT NULL DEFAULT 0;
