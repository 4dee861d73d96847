-- The account and its ledger. Applied once, by the first racebank that starts on this database,
-- inside the migration transaction (see migrate.rs); later versions go in new files, never here.

-- One row per account (`--account`): every replica that names the same id shares the row.
CREATE TABLE racebank.accounts (
    id              text   PRIMARY KEY,
    balance         bigint NOT NULL CHECK (balance >= 0),
    -- Bumped by every write: what `optimistic` compares.
    version         bigint NOT NULL DEFAULT 0,
    -- The balance the latest write overwrote. A write sets `replaced = balance` in the same SET as
    -- the new balance; there `balance` is the row's value under the row lock, so RETURNING hands
    -- back exactly what this write erased, whatever the request had read.
    replaced        bigint NOT NULL DEFAULT 0,
    -- The balance at creation or at the last reset, for `/stats`.
    initial_balance bigint NOT NULL CHECK (initial_balance >= 0)
);

-- The account-wide ledger behind `/stats`, in shards: each write adds to one shard picked at
-- random, so concurrent writers rarely wait on the same ledger row; `/stats` sums the shards.
-- Sums are numeric because a bigint sum of bigint amounts can overflow, and the identity
-- balance = expected_balance - lost_net must stay exact however long the account runs.
CREATE TABLE racebank.ledger (
    account           text     NOT NULL REFERENCES racebank.accounts (id) ON DELETE CASCADE,
    shard             smallint NOT NULL,
    deposit_count     bigint   NOT NULL DEFAULT 0,
    deposit_sum       numeric  NOT NULL DEFAULT 0,
    withdrawal_count  bigint   NOT NULL DEFAULT 0,
    withdrawal_sum    numeric  NOT NULL DEFAULT 0,
    refused_count     bigint   NOT NULL DEFAULT 0,
    lost_updates      bigint   NOT NULL DEFAULT 0,
    lost_net          numeric  NOT NULL DEFAULT 0,
    retries           bigint   NOT NULL DEFAULT 0,
    retries_exhausted bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (account, shard)
);
