-- The one extra migration of the loopcard binary built with the tag
-- loopcard_upgradetest (never shipped): the "new binary" that
-- TestFormationCLI rolls over a running event. Expand-only, as every
-- migration applied during an event must be, since the old binary may
-- still run beside it: a new column, and a new index on the busiest table
-- built while terminals upload.
ALTER TABLE topups ADD COLUMN upgrade_note text;
CREATE INDEX terminal_txs_upgrade_test ON terminal_txs (org_id, terminal_id, at);
