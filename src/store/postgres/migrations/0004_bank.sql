-- The bank: many accounts per `--account` id, and the bank's ledger. Every replica that names the
-- same id shares its bank's rows.

-- One row per account of a bank. Balances may go below zero (households): the rule is the
-- application's, in the section, so that a mode that does not guard it shows it broken.
CREATE TABLE racebank.bank_accounts (
    bank         text    NOT NULL,
    id           text    NOT NULL,
    balance      bigint  NOT NULL,
    -- Bumped by every write: what `optimistic` compares.
    version      bigint  NOT NULL DEFAULT 0,
    -- The balance the latest write overwrote (`replaced = balance` in the write's own SET).
    replaced     bigint  NOT NULL DEFAULT 0,
    -- The balance at opening or at the last reset.
    opening      bigint  NOT NULL CHECK (opening >= 0),
    -- The account's own ledger, kept in its row: a write changes the balance and its counters in
    -- one UPDATE, under the row lock it takes anyway, so they can never drift apart and no
    -- second row is locked. Sums are numeric, as in racebank.ledger.
    credits      numeric NOT NULL DEFAULT 0,
    debits       numeric NOT NULL DEFAULT 0,
    lost_updates bigint  NOT NULL DEFAULT 0,
    -- Money erasing writes created (they overwrote a lower balance than read) or destroyed.
    created      numeric NOT NULL DEFAULT 0,
    destroyed    numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (bank, id)
);

-- The bank-wide counts, in shards as racebank.ledger: a move's entry goes to one shard picked at
-- random, in the same statement as its last write; refusals and redos of a request that wrote
-- nothing are upserts of their own. `/stats` sums the shards.
CREATE TABLE racebank.bank_ledger (
    bank              text     NOT NULL,
    shard             smallint NOT NULL,
    deposits          bigint   NOT NULL DEFAULT 0,
    withdrawals       bigint   NOT NULL DEFAULT 0,
    transfers         bigint   NOT NULL DEFAULT 0,
    transfer_sum      numeric  NOT NULL DEFAULT 0,
    refused           bigint   NOT NULL DEFAULT 0,
    deadlocks         bigint   NOT NULL DEFAULT 0,
    retries           bigint   NOT NULL DEFAULT 0,
    retries_exhausted bigint   NOT NULL DEFAULT 0,
    PRIMARY KEY (bank, shard)
);
