-- The non-refundable credit a terminal debit spends is kept on its row, as
-- the debit itself is (migration 011): the upload reads the card's
-- non-refundable part with the card's lock and names on the row the card's
-- card_nonrefundable account, the merchant's nonrefundable_credit account
-- (the organizer's, ref '', where the merchant has none) and the amount
-- spent, which the trigger moves between the two. Before, the trigger
-- planned and wrote a journal entry of postings for them (migration 026),
-- which halved the rate of uploads whose cards all held voucher credit.
-- The columns are set on every posted debit of a card that has a
-- non-refundable account (spent 0 when its part is used up) and NULL on
-- the others. Expand-only, as a migration applied during an event must be:
-- a binary from before it, still running beside the new one, writes rows
-- without the columns; for those of cards with a non-refundable account
-- the trigger still spends that part as migration 026's did. A binary that
-- writes the columns sets loopcard.nonrefundable_on_rows for its
-- transaction. (A correction's non-refundable part, written by the new
-- binary, is loaded as refundable if the old one writes the load.) The
-- constraints are NOT VALID: rows before them have the columns NULL and
-- are not scanned under the table's lock; new rows are checked.
ALTER TABLE terminal_txs ADD COLUMN nonrefundable_account bigint,
    ADD COLUMN nonrefundable_contra bigint,
    ADD COLUMN nonrefundable_spent bigint,
    ADD CONSTRAINT terminal_txs_nonrefundable CHECK (
        (nonrefundable_spent IS NULL) = (nonrefundable_account IS NULL)
        AND (nonrefundable_spent IS NULL) = (nonrefundable_contra IS NULL)
        AND (nonrefundable_spent IS NULL OR (card_account IS NOT NULL AND nonrefundable_spent >= 0
            AND nonrefundable_spent <= amount AND nonrefundable_account <> nonrefundable_contra))) NOT VALID;

-- A load's non-refundable part: a voucher's whole amount, the part of a
-- correction that gives back non-refundable credit a payment spent.
-- A voucher load is non-refundable as a whole, also when a binary from
-- before this migration writes it (the trigger sets it).
ALTER TABLE topups ADD COLUMN nonrefundable bigint NOT NULL DEFAULT 0;
UPDATE topups SET nonrefundable = amount WHERE channel = 'voucher';
ALTER TABLE topups ADD CONSTRAINT topups_nonrefundable CHECK (nonrefundable >= 0 AND nonrefundable <= amount) NOT VALID;
CREATE FUNCTION ledger_voucher_topup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.nonrefundable := NEW.amount;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER topups_voucher BEFORE INSERT ON topups FOR EACH ROW WHEN (NEW.channel = 'voucher')
    EXECUTE FUNCTION ledger_voucher_topup();

-- The part of a correction that gives back non-refundable credit.
ALTER TABLE corrections ADD COLUMN nonrefundable bigint NOT NULL DEFAULT 0
    CHECK (nonrefundable >= 0 AND nonrefundable <= amount);

CREATE OR REPLACE VIEW ledger_postings AS
SELECT postings.org_id, postings.txn_id, postings.line, postings.account_id, postings.amount
  FROM postings
UNION ALL
SELECT org_id, txn_id, 1::smallint, card_account, amount FROM terminal_txs WHERE card_account IS NOT NULL
UNION ALL
SELECT org_id, txn_id, 2::smallint, merchant_account, -amount FROM terminal_txs WHERE card_account IS NOT NULL
UNION ALL
SELECT org_id, txn_id, 3::smallint, nonrefundable_account, nonrefundable_spent FROM terminal_txs WHERE nonrefundable_spent > 0
UNION ALL
SELECT org_id, txn_id, 4::smallint, nonrefundable_contra, -nonrefundable_spent FROM terminal_txs WHERE nonrefundable_spent > 0;

-- The terminal debit trigger of migration 026, which posts the
-- non-refundable part spent from the rows too (a second scan of the new
-- rows, which finds none in an upload without voucher credit), and spends
-- it itself only for rows of cards with such a part written without the
-- columns (by a binary from before this migration).
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied bigint;
    nr_cards bigint[];
    nr_accts bigint[];
BEGIN
    WITH post AS (SELECT t.org_id, p.account_id, p.delta, NULL::bigint AS card_seq, NULL::bigint AS balance_after
                    FROM new_txs t
                    CROSS JOIN LATERAL (VALUES (t.card_account, t.amount), (t.merchant_account, -t.amount)) p(account_id, delta)
                   WHERE t.card_account IS NOT NULL
                  UNION ALL
                  SELECT t.org_id, p.account_id, p.delta, NULL::bigint, NULL::bigint
                    FROM new_txs t
                    CROSS JOIN LATERAL (VALUES (t.nonrefundable_account, t.nonrefundable_spent),
                                               (t.nonrefundable_contra, -t.nonrefundable_spent)) p(account_id, delta)
                   WHERE t.nonrefundable_spent > 0),
         tip AS (SELECT DISTINCT ON (t.org_id, a.account_id) t.org_id, a.account_id, 0::bigint AS delta, t.card_seq, t.balance_after
                   FROM new_txs t
                   CROSS JOIN LATERAL (SELECT coalesce(t.card_account, (SELECT c.account_id FROM cards c
                                                     WHERE c.org_id = t.org_id AND c.card_id = t.card_id))) a(account_id)
                  WHERE t.chained
                  ORDER BY t.org_id, a.account_id, t.card_seq DESC),
         d AS (SELECT org_id, account_id, sum(delta)::bigint AS delta, max(card_seq) AS card_seq, max(balance_after) AS balance_after
                 FROM (SELECT * FROM post UNION ALL SELECT * FROM tip) x
                GROUP BY org_id, account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta,
                      chain_seq = CASE WHEN d.card_seq > coalesce(a.chain_seq, -1) THEN d.card_seq ELSE a.chain_seq END,
                      chain_after = CASE WHEN d.card_seq > coalesce(a.chain_seq, -1) THEN d.balance_after ELSE a.chain_after END
                 FROM d
                WHERE a.org_id = d.org_id AND a.account_id = d.account_id
            RETURNING d.delta, a.account_id, a.nonrefundable_account AS nr)
    SELECT coalesce(sum(delta), 0),
           array_agg(account_id) FILTER (WHERE nr IS NOT NULL AND delta > 0),
           array_agg(nr) FILTER (WHERE nr IS NOT NULL AND delta > 0)
      FROM u INTO applied, nr_cards, nr_accts;
    IF applied <> 0 THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    -- A binary that names what its rows spend says so for its transaction
    -- (loopcard.nonrefundable_on_rows); rows of one that does not are
    -- spent here.
    IF nr_accts IS NOT NULL AND current_setting('loopcard.nonrefundable_on_rows', true) IS DISTINCT FROM 'on' THEN
        PERFORM ledger_spend_nonrefundable(nr_cards, nr_accts, array_agg(t.org_id), array_agg(t.card_account),
                    array_agg(t.merchant_id), array_agg(t.card_seq), array_agg(t.txn_id), array_agg(t.amount))
           FROM new_txs t WHERE t.card_account IS NOT NULL AND t.nonrefundable_spent IS NULL;
    END IF;
    RETURN NULL;
END
$fn$;

-- HQ's list of voucher batches counts the redeemed vouchers of each.
CREATE INDEX vouchers_redeemed ON vouchers (org_id, batch_id) WHERE redeemed_at IS NOT NULL;
