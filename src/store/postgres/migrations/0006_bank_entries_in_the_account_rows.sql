-- The bank's move entries in the account rows, as 0005 did for the single account: a write adds its
-- move's bank-wide entry (a deposit, a withdrawal or a transfer, and the redos it needed) to these
-- columns of a row it writes anyway, instead of upserting a racebank.bank_ledger shard in the same
-- statement. A transfer then writes exactly its two rows: the shard was a third tuple, its index
-- probe and its WAL, inside both rows' locks (issue 19). `/stats` adds these columns over the
-- bank's accounts to the sum of the shards, which keep what wrote no balance (refusals, the redos
-- of a request that wrote nothing, retries given up); a reset zeroes them.
ALTER TABLE racebank.bank_accounts
    ADD COLUMN deposits     bigint  NOT NULL DEFAULT 0,
    ADD COLUMN withdrawals  bigint  NOT NULL DEFAULT 0,
    ADD COLUMN transfers    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN transfer_sum numeric NOT NULL DEFAULT 0,
    ADD COLUMN retries      bigint  NOT NULL DEFAULT 0,
    ADD COLUMN deadlocks    bigint  NOT NULL DEFAULT 0;

-- `atomic` locks a transfer's two rows in id order without a lock of its own: its statement writes
-- the account that sorts first first (the debit or the credit), then the other, each with its
-- check. A second write refused after the first calls this, and the error rolls the whole
-- statement back, the first write included; the server explains the refusal from a read of the
-- balances (atomic.rs).
CREATE FUNCTION racebank.bank_move_refused(account text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the write to account % was refused after the move''s first write', account
        USING ERRCODE = 'RB409';
END
$$;
