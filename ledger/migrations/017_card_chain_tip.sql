-- Each card account keeps the tip of its card's chain: the highest card
-- sequence written (chain_seq) and the balance after it (chain_after), or
-- NULL before the first write. Checking a terminal debit against its card's
-- chain needs the chain rows next to it; a debit beyond the tip, which is
-- nearly every debit, has no row after it and at most the tip before it, so
-- the tip, read with the card's lock, answers without looking the chain up.
--
-- The tip is kept by triggers on the two tables of the chain (card_events
-- and chained terminal_txs, see card_chain), under the card's lock that
-- every writer of a card holds, and nothing else may change it (the balance
-- guard). Verify checks it against card_chain.
ALTER TABLE accounts ADD COLUMN chain_seq bigint, ADD COLUMN chain_after bigint;
ALTER TABLE accounts ADD CONSTRAINT accounts_chain_tip CHECK ((chain_seq IS NULL) = (chain_after IS NULL));

-- Rows written before this migration (the balance guard lets an update that
-- leaves balances alone through, until it is replaced below).
UPDATE accounts a SET chain_seq = t.card_seq, chain_after = t.balance_after
  FROM (SELECT DISTINCT ON (org_id, card_id) org_id, card_id, card_seq, balance_after
          FROM card_chain ORDER BY org_id, card_id, card_seq DESC) t
  JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
 WHERE a.org_id = c.org_id AND a.account_id = c.account_id;

CREATE OR REPLACE FUNCTION ledger_guard_balance() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.balance = 0 AND NEW.chain_seq IS NULL THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.balance = OLD.balance AND NEW.chain_seq IS NOT DISTINCT FROM OLD.chain_seq
       AND NEW.chain_after IS NOT DISTINCT FROM OLD.chain_after THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger: balances change only through postings, card chain tips only through card writes'
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

-- A card write at a store moves its card's tip.
CREATE FUNCTION ledger_card_event_tip() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE accounts a SET chain_seq = NEW.card_seq, chain_after = NEW.balance_after
      FROM cards c
     WHERE c.org_id = NEW.org_id AND c.card_id = NEW.card_id
       AND a.org_id = c.org_id AND a.account_id = c.account_id
       AND NEW.card_seq > coalesce(a.chain_seq, -1);
    RETURN NULL;
END
$fn$;
CREATE TRIGGER card_events_tip AFTER INSERT ON card_events
    FOR EACH ROW EXECUTE FUNCTION ledger_card_event_tip();

-- Terminal debits: the trigger that posts them (migration 016) also moves
-- the tips of their cards, in the same update of each card account. A
-- chained debit that is held (unfunded) names no account; its card's is
-- looked up.
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied bigint;
BEGIN
    WITH post AS (SELECT t.org_id, p.account_id, p.delta, NULL::bigint AS card_seq, NULL::bigint AS balance_after
                    FROM new_txs t
                    CROSS JOIN LATERAL (VALUES (t.card_account, t.amount), (t.merchant_account, -t.amount)) p(account_id, delta)
                   WHERE t.card_account IS NOT NULL),
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
                WHERE a.org_id = d.org_id AND a.account_id = d.account_id RETURNING d.delta)
    SELECT coalesce(sum(delta), 0) FROM u INTO applied;
    IF applied <> 0 THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    RETURN NULL;
END
$fn$;
