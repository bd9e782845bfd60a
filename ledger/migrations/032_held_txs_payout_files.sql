-- Migration 032 (issue 20, the HQ console).

-- HQ's list of held terminal transactions (GET /v1/hq/held-transactions,
-- the console's alerts page) reads the organizer's held ones, the latest
-- received first, without scanning every transaction.
CREATE INDEX terminal_txs_held ON terminal_txs (org_id, received_at DESC) WHERE status = 'held';

-- A booked payout run keeps its pain.001 file, sealed by the HSM's
-- data-kek (JSON of a keys.Envelope): HQ downloads it again when the
-- answer that carried it was lost.
ALTER TABLE payouts ADD COLUMN sealed_file bytea;
