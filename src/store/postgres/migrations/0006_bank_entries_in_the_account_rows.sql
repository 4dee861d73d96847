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

-- `atomic` locks a transfer's two rows in id order without a lock of its own: when the credited
-- account sorts first, its statement credits first, then debits with the funds check. A debit
-- refused after its credit calls this, and the error rolls the whole statement back, credit
-- included; the server explains the refusal from a read of the balances (atomic.rs).
CREATE FUNCTION racebank.bank_debit_refused(account text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the debit of account % was refused after its credit', account
        USING ERRCODE = 'RB409';
END
$$;
