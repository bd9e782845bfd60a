-- Business days (issue 19): an organizer's day ends at day_end_hour in its
-- time_zone (IANA name), not at midnight UTC. The business day of an
-- instant t is the local date of t - day_end_hour hours in time_zone; store
-- days, their closes and the reports use it (ledger/businessday.go). The
-- default, 06:00 UTC, is a festival night's end.
ALTER TABLE organizers ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'
    CHECK (time_zone <> '' AND length(time_zone) <= 64);
ALTER TABLE organizers ADD COLUMN day_end_hour smallint NOT NULL DEFAULT 6
    CHECK (day_end_hour BETWEEN 0 AND 23);

-- The product report of one business day reads the organizer's terminal
-- transactions of that day by their terminal time.
CREATE INDEX terminal_txs_at ON terminal_txs (org_id, at);
