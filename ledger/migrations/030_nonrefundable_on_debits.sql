-- The non-refundable credit a terminal debit spends is kept on its row, as
-- the debit itself is (migration 011): the upload reads the card's
-- non-refundable part with the card's lock and names on the row the card's
-- card_nonrefundable account, the merchant's nonrefundable_credit account
-- (the organizer's, ref '', where the merchant has none) and the amount
-- spent, which the trigger moves between the two. Before, the trigger
-- planned and wrote a journal entry of postings for them (migration 026),
-- which halved the rate of uploads whose cards all held voucher credit.
-- The columns are NULL for a debit that spent none. The constraint is NOT
-- VALID: rows before it have the columns NULL, and new rows are checked.
ALTER TABLE terminal_txs ADD COLUMN nonrefundable_account bigint,
    ADD COLUMN nonrefundable_contra bigint,
    ADD COLUMN nonrefundable_spent bigint,
    ADD CONSTRAINT terminal_txs_nonrefundable CHECK (
        (nonrefundable_spent IS NULL) = (nonrefundable_account IS NULL)
        AND (nonrefundable_spent IS NULL) = (nonrefundable_contra IS NULL)
        AND (nonrefundable_spent IS NULL OR (card_account IS NOT NULL AND nonrefundable_spent > 0
            AND nonrefundable_spent <= amount AND nonrefundable_account <> nonrefundable_contra))) NOT VALID;

-- A load's non-refundable part: a voucher's whole amount, the part of a
-- correction that gives back non-refundable credit a payment spent.
ALTER TABLE topups ADD COLUMN nonrefundable bigint NOT NULL DEFAULT 0;
UPDATE topups SET nonrefundable = amount WHERE channel = 'voucher';
ALTER TABLE topups ADD CONSTRAINT topups_nonrefundable CHECK (nonrefundable >= 0 AND nonrefundable <= amount);

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
SELECT org_id, txn_id, 3::smallint, nonrefundable_account, nonrefundable_spent FROM terminal_txs WHERE nonrefundable_spent IS NOT NULL
UNION ALL
SELECT org_id, txn_id, 4::smallint, nonrefundable_contra, -nonrefundable_spent FROM terminal_txs WHERE nonrefundable_spent IS NOT NULL;

-- The terminal debit trigger of migration 026, which posts the
-- non-refundable part spent from the rows too (a second scan of the new
-- rows, which finds none in an upload without voucher credit).
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied bigint;
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
                   WHERE t.nonrefundable_spent IS NOT NULL),
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
            RETURNING d.delta)
    SELECT coalesce(sum(delta), 0) FROM u INTO applied;
    IF applied <> 0 THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    RETURN NULL;
END
$fn$;

DROP FUNCTION ledger_spend_nonrefundable(bigint[], bigint[], bigint[], bigint[], text[], bigint[], uuid[], bigint[]);

-- HQ's list of voucher batches counts the redeemed vouchers of each.
CREATE INDEX vouchers_redeemed ON vouchers (org_id, batch_id) WHERE redeemed_at IS NOT NULL;
