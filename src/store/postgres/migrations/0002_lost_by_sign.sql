-- The erasures summed apart by sign, as every store reports them in `/stats`: `lost_removed` for
-- writes over a higher balance than they read (erased deposits, mostly), `lost_added` for writes
-- over a lower one (erased withdrawals). `lost_net = lost_removed - lost_added`, and with mixed
-- deposits and withdrawals the net alone can hide both.
ALTER TABLE racebank.ledger
    ADD COLUMN lost_removed numeric NOT NULL DEFAULT 0,
    ADD COLUMN lost_added   numeric NOT NULL DEFAULT 0;
