-- Idempotency keys: the answer to the first request with each key, kept until it expires.
-- A write with a key inserts its row in the write's own statement (see ledger.rs), so the balance
-- change and the answer commit together or not at all, and the primary key lets exactly one
-- request per key write: a duplicate's insert fails (waiting first for an uncommitted one), and
-- the failure rolls back its whole statement, balance change included.
CREATE TABLE racebank.idempotency (
    account    text        NOT NULL REFERENCES racebank.accounts (id) ON DELETE CASCADE,
    key        text        NOT NULL,
    -- The request the key identified: a repeat must ask for the same.
    kind       text        NOT NULL CHECK (kind IN ('deposit', 'withdrawal')),
    amount     bigint      NOT NULL CHECK (amount > 0),
    -- The answer: 200 with the balance written, 409 or 422 with the balance that refused.
    status     smallint    NOT NULL,
    balance    bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (account, key)
);
-- For purging what expired.
CREATE INDEX idempotency_expires_at ON racebank.idempotency (expires_at);
