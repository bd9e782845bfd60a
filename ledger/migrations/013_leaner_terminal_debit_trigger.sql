-- The terminal debit trigger in one statement. Every directly posted debit
-- moves +amount and -amount, so the deltas the trigger applies sum to zero
-- exactly when every account it names exists and was updated (a missing
-- account drops its delta, and the sum then is the negated delta); the
-- separate counts of accounts and updates were a second pass over the
-- deltas for the same answer. A missing account whose deltas cancel out
-- moves no money, and Verify still names the debit that points at it.
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied numeric;
BEGIN
    WITH d AS (SELECT org_id, account_id, sum(amount) AS delta FROM (
                   SELECT org_id, card_account AS account_id, amount FROM new_txs WHERE card_account IS NOT NULL
                   UNION ALL
                   SELECT org_id, merchant_account, -amount FROM new_txs WHERE card_account IS NOT NULL) p
               GROUP BY org_id, account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta FROM d
                WHERE a.org_id = d.org_id AND a.account_id = d.account_id RETURNING d.delta)
    SELECT coalesce(sum(delta), 0) FROM u INTO applied;
    IF applied <> 0 THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    RETURN NULL;
END
$fn$;
