-- The terminal debit trigger reads the statement's new rows once (each
-- debit yields its two postings through LATERAL VALUES) instead of twice,
-- and sums in bigint: the transition table holds whole terminal_txs rows,
-- and reading them was a measurable part of a batch upload. Same rules as
-- migration 013.
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied bigint;
BEGIN
    WITH d AS (SELECT t.org_id, p.account_id, sum(p.delta)::bigint AS delta
                 FROM new_txs t
                 CROSS JOIN LATERAL (VALUES (t.card_account, t.amount), (t.merchant_account, -t.amount)) p(account_id, delta)
                WHERE t.card_account IS NOT NULL
                GROUP BY t.org_id, p.account_id),
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
