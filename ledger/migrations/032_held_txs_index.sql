-- HQ's list of held terminal transactions (GET /v1/hq/held-transactions,
-- the console's alerts page) reads the organizer's held ones, the latest
-- received first, without scanning every transaction.
CREATE INDEX terminal_txs_held ON terminal_txs (org_id, received_at DESC) WHERE status = 'held';
