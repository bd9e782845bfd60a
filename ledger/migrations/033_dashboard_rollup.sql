-- The dashboard's totals are rolled up beside the uploads, not in their
-- statements (issue 20). Migration 031 kept the terminal sales in a
-- trigger on every insert into terminal_txs: a statement more in each
-- debit's transaction, which doubled the PostgreSQL CPU of a connected
-- terminal's payment (scripts/bench ledger, online phase). And the cards'
-- balances were one join of the event's cards at every read, 50-350 ms at
-- 100k cards.
--
-- Now every row that moves a balance or makes a sale (terminal_txs,
-- postings) carries the id of the transaction that wrote it (xact, 64
-- bits: it never wraps). A roll-up (ledger.RollUp, every few seconds in
-- serve) adds the rows of the transactions that ended since the last one
-- to the totals and moves the organizer's mark (dashboard_rollups.upto)
-- on to the oldest transaction still running: every row below the mark is
-- in the totals, every row at or above it is not. A reader takes the
-- totals and the rows above the mark in one snapshot, so each figure is
-- the ledger's at that snapshot however late the roll-up runs; it only
-- has fewer rows to add when the roll-up is recent. The rows above the
-- mark are found through a btree index on (org_id, xact): the only index
-- that takes both of the reader's conditions, so the planner takes it
-- even when the tables have no statistics yet (a bulk load). A BRIN index
-- costs less WAL (about 60 bytes per payment) but left the choice to the
-- statistics, and an index on xact alone lost to the organizer's index on
-- a fresh database: both read every row of the organizer at times
-- (scripts/bench api and console).
--
-- Rows written before this migration have no xact: they are in the totals
-- it leaves (it holds both tables locked while it adds them up).

ALTER TABLE terminal_txs ADD COLUMN xact bigint;
ALTER TABLE terminal_txs ALTER COLUMN xact SET DEFAULT (pg_current_xact_id()::text::bigint);
ALTER TABLE postings ADD COLUMN xact bigint;
ALTER TABLE postings ALTER COLUMN xact SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX terminal_txs_xact ON terminal_txs (org_id, xact);
CREATE INDEX postings_xact ON postings (org_id, xact);

DROP TRIGGER terminal_txs_sales ON terminal_txs;
DROP FUNCTION ledger_terminal_sales();

-- Every row of terminal_txs and postings with xact < upto (or none) is in
-- terminal_sales and card_totals.
CREATE TABLE dashboard_rollups (
    org_id bigint NOT NULL,
    upto   bigint NOT NULL,
    PRIMARY KEY (org_id)
);

-- The event's cards that hold credit, and the credit they hold
-- (what the cards' own accounts say: side * balance).
CREATE TABLE card_totals (
    org_id      bigint NOT NULL,
    event_id    text NOT NULL,
    with_money  bigint NOT NULL,
    outstanding bigint NOT NULL,
    PRIMARY KEY (org_id, event_id)
);

INSERT INTO card_totals (org_id, event_id, with_money, outstanding)
    SELECT c.org_id, c.event_id, count(*) FILTER (WHERE a.side * a.balance > 0), sum(a.side * a.balance)::bigint
      FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
     GROUP BY 1, 2;

-- The terminal sales of the organizer's rows with from_xact <= xact <
-- to_xact (NULL: no bound), by event, terminal, hour (UTC), merchant and
-- status. A transaction of a card the ledger does not know counts nowhere.
CREATE FUNCTION ledger_sales_since(p_org bigint, from_xact bigint, to_xact bigint)
RETURNS TABLE (event_id text, terminal_id text, hour timestamptz, merchant_id text, status text, count bigint, amount bigint)
LANGUAGE sql STABLE AS $fn$
    -- The card of each row by its key (OFFSET 0 keeps the lookup a lookup
    -- whatever the planner thinks of the tables' sizes).
    SELECT c.event_id, t.terminal_id, date_bin('1 hour', t.at, timestamptz '2000-01-01 00:00:00+00'),
           t.merchant_id, t.status, count(*), sum(t.amount)::bigint
      FROM terminal_txs t
     CROSS JOIN LATERAL (SELECT c.event_id FROM cards c WHERE c.org_id = t.org_id AND c.card_id = t.card_id OFFSET 0) c
     WHERE t.org_id = p_org AND t.xact >= from_xact AND (to_xact IS NULL OR t.xact < to_xact)
     GROUP BY 1, 2, 3, 4, 5
$fn$;

-- How the organizer's card totals moved, by event, through the rows with
-- from_xact <= xact < to_xact (NULL: no bound): the cards those rows
-- touched, their balance now less the rows from to_xact on against their
-- balance now less the rows from from_xact on. Exact in one snapshot in
-- which every transaction below to_xact has ended. Each touched account
-- and its card are looked up by their keys alone (OFFSET 0, as above): with
-- the account's kind in the lookup the planner once walked every card
-- account's versions for each (scripts/bench api, 0.8 s a roll-up).
CREATE FUNCTION ledger_card_totals_since(p_org bigint, from_xact bigint, to_xact bigint)
RETURNS TABLE (event_id text, with_money bigint, outstanding bigint)
LANGUAGE sql STABLE AS $fn$
    WITH d AS (SELECT t.card_account AS account_id, t.xact, t.amount FROM terminal_txs t
                WHERE t.org_id = p_org AND t.xact >= from_xact AND t.card_account IS NOT NULL
               UNION ALL
               SELECT p.account_id, p.xact, p.amount FROM postings p
                WHERE p.org_id = p_org AND p.xact >= from_xact),
         a AS (SELECT account_id, sum(amount) AS since_from,
                      coalesce(sum(amount) FILTER (WHERE xact >= to_xact), 0) AS since_to
                 FROM d GROUP BY account_id),
         b AS (SELECT c.event_id, x.side * (x.balance - a.since_to) AS at_to, x.side * (x.balance - a.since_from) AS at_from
                 FROM a
                 CROSS JOIN LATERAL (SELECT x.side, x.balance, x.kind, x.ref FROM accounts x
                                      WHERE x.org_id = p_org AND x.account_id = a.account_id OFFSET 0) x
                 CROSS JOIN LATERAL (SELECT c.event_id, c.account_id FROM cards c
                                      WHERE c.org_id = p_org AND c.card_id = CASE WHEN x.kind = 'card' THEN decode(x.ref, 'hex') END
                                     OFFSET 0) c
                WHERE c.account_id = a.account_id)
    SELECT event_id, (count(*) FILTER (WHERE at_to > 0) - count(*) FILTER (WHERE at_from > 0))::bigint,
           sum(at_to - at_from)::bigint
      FROM b GROUP BY event_id
$fn$;
