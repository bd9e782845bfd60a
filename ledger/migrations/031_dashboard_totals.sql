-- The HQ console's dashboard (issue 20) answers from running totals rather
-- than from the event's whole ledger: at 100k cards and 1M terminal
-- transactions the event report's queries took seconds. Triggers keep the
-- totals in the same transactions as the rows they count, so that every
-- figure is the ledger's at every commit:
--   terminal_sales       terminal transactions by event, terminal, hour
--                        (UTC), merchant and status;
--   topup_totals         top-ups by event, channel and status;
-- The cards' balances are not totalled: a trigger on every update of
-- accounts halved batch uploads (scripts/bench ledger), and the event's
-- cards are one join at read time.
-- Neither is a hot row: a terminal's sales are its own rows (a
-- terminal's uploads come one after the other), and the top-ups are
-- split in 1024 shards by the writing connection (its process id), which
-- concurrent transactions share only when two ids collide; the report
-- sums the shards. Every upsert takes its rows in key order, so two
-- writers cannot deadlock on them.

CREATE TABLE terminal_sales (
    org_id      bigint NOT NULL,
    event_id    text NOT NULL,
    terminal_id text NOT NULL,
    hour        timestamptz NOT NULL,
    merchant_id text NOT NULL,
    status      text NOT NULL,
    count       bigint NOT NULL,
    amount      bigint NOT NULL,
    PRIMARY KEY (org_id, event_id, terminal_id, hour, merchant_id, status)
);

-- A terminal transaction's event is its card's (as the report had it);
-- a transaction of a card the ledger does not know counts nowhere.
CREATE FUNCTION ledger_terminal_sales() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO terminal_sales AS s (org_id, event_id, terminal_id, hour, merchant_id, status, count, amount)
        SELECT t.org_id, c.event_id, t.terminal_id, date_bin('1 hour', t.at, timestamptz '2000-01-01 00:00:00+00'),
               t.merchant_id, t.status, count(*), sum(t.amount)::bigint
          FROM new_txs t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
         GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (org_id, event_id, terminal_id, hour, merchant_id, status)
        DO UPDATE SET count = s.count + EXCLUDED.count, amount = s.amount + EXCLUDED.amount;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER terminal_txs_sales AFTER INSERT ON terminal_txs REFERENCING NEW TABLE AS new_txs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_terminal_sales();

CREATE TABLE topup_totals (
    org_id   bigint NOT NULL,
    event_id text NOT NULL,
    channel  text NOT NULL,
    status   text NOT NULL,
    shard    integer NOT NULL,
    count    bigint NOT NULL,
    amount   bigint NOT NULL,
    PRIMARY KEY (org_id, event_id, channel, status, shard)
);

-- Inserted top-ups count in; an update takes the old row out and puts the
-- new one in (a status change moves it).
CREATE FUNCTION ledger_topup_totals() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = on SET enable_seqscan = on AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO topup_totals AS s (org_id, event_id, channel, status, shard, count, amount)
            SELECT t.org_id, c.event_id, t.channel, t.status, pg_backend_pid() % 1024, count(*), sum(t.amount)::bigint
              FROM new_rows t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
             GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
            ON CONFLICT (org_id, event_id, channel, status, shard)
            DO UPDATE SET count = s.count + EXCLUDED.count, amount = s.amount + EXCLUDED.amount;
    ELSE
        INSERT INTO topup_totals AS s (org_id, event_id, channel, status, shard, count, amount)
            SELECT x.org_id, c.event_id, x.channel, x.status, pg_backend_pid() % 1024, sum(x.n), sum(x.amount)::bigint
              FROM (SELECT org_id, card_id, channel, status, 1 AS n, amount FROM new_rows
                    UNION ALL SELECT org_id, card_id, channel, status, -1, -amount FROM old_rows) x
              JOIN cards c ON c.org_id = x.org_id AND c.card_id = x.card_id
             GROUP BY 1, 2, 3, 4, 5 HAVING sum(x.n) <> 0 OR sum(x.amount) <> 0 ORDER BY 1, 2, 3, 4, 5
            ON CONFLICT (org_id, event_id, channel, status, shard)
            DO UPDATE SET count = s.count + EXCLUDED.count, amount = s.amount + EXCLUDED.amount;
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER topups_totals_insert AFTER INSERT ON topups REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_topup_totals();
CREATE TRIGGER topups_totals_update AFTER UPDATE ON topups REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_topup_totals();

-- The report's chargeback and provider refund losses: a few journal
-- entries among every top-up's.
CREATE INDEX journal_losses ON journal (org_id, event_id) WHERE kind IN ('chargeback', 'provider_refund');

-- What the ledger holds already.
INSERT INTO terminal_sales (org_id, event_id, terminal_id, hour, merchant_id, status, count, amount)
    SELECT t.org_id, c.event_id, t.terminal_id, date_bin('1 hour', t.at, timestamptz '2000-01-01 00:00:00+00'),
           t.merchant_id, t.status, count(*), sum(t.amount)::bigint
      FROM terminal_txs t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
     GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO topup_totals (org_id, event_id, channel, status, shard, count, amount)
    SELECT t.org_id, c.event_id, t.channel, t.status, 0, count(*), sum(t.amount)::bigint
      FROM topups t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
     GROUP BY 1, 2, 3, 4;

-- A terminal's last heartbeat: with each upload and session-key fetch it
-- says how many transactions wait in its queue besides the upload, and
-- since when the oldest of them waits (the server's clock less the age the
-- terminal gave). The console shows them.
ALTER TABLE terminals ADD COLUMN heartbeat_at timestamptz, ADD COLUMN queued integer,
    ADD COLUMN oldest_unsent_at timestamptz;
