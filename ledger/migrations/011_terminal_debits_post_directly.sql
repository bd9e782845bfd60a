-- Terminal debits post themselves. A posted terminal transaction is its own
-- journal entry with two implicit postings: +amount on the card's account
-- (the credit owed to the cardholder shrinks) and -amount on the merchant's.
-- Debits are nearly every row of the ledger, and writing each as a journal
-- row and two posting rows tripled what a batch upload writes; now the
-- terminal_txs row, which had to be written anyway, carries the two account
-- ids and a trigger moves the balances exactly as the postings trigger does.
--
-- Rows posted before this migration keep their journal entry and postings
-- and have no account ids; ledger_postings below is every posting of both
-- kinds, and Verify checks the balances against it.

ALTER TABLE terminal_txs ADD COLUMN card_account bigint, ADD COLUMN merchant_account bigint;
ALTER TABLE terminal_txs ADD CONSTRAINT terminal_txs_amount CHECK (amount > 0);
ALTER TABLE terminal_txs ADD CONSTRAINT terminal_txs_posting CHECK (
    (card_account IS NULL) = (merchant_account IS NULL)
    AND (card_account IS NULL OR (status = 'posted' AND card_account <> merchant_account)));

CREATE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    n_accounts bigint;
    n_updated bigint;
BEGIN
    WITH p AS (SELECT org_id, card_account AS account_id, amount FROM new_txs WHERE card_account IS NOT NULL
               UNION ALL
               SELECT org_id, merchant_account, -amount FROM new_txs WHERE card_account IS NOT NULL),
         d AS (SELECT org_id, account_id, sum(amount) AS delta FROM p GROUP BY org_id, account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta FROM d
                WHERE a.org_id = d.org_id AND a.account_id = d.account_id RETURNING 1)
    SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM u) INTO n_accounts, n_updated;
    IF n_updated <> n_accounts THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER terminal_txs_apply AFTER INSERT ON terminal_txs
    REFERENCING NEW TABLE AS new_txs FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_terminal_debits();

-- Money rows are never changed or removed.
CREATE TRIGGER terminal_txs_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON terminal_txs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Every posting of the ledger: the stored ones and the two of each directly
-- posted terminal debit.
CREATE VIEW ledger_postings AS
    SELECT org_id, txn_id, line, account_id, amount FROM postings
    UNION ALL
    SELECT org_id, txn_id, 1::smallint, card_account, amount FROM terminal_txs WHERE card_account IS NOT NULL
    UNION ALL
    SELECT org_id, txn_id, 2::smallint, merchant_account, -amount FROM terminal_txs WHERE card_account IS NOT NULL;
