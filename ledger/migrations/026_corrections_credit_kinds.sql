-- Corrections of posted payments and credit that is not money (issue 21).
--
-- A card's credit is its card account, what terminals debit. The part of
-- it that is not refundable (vouchers, comps, welcome credit) is kept
-- beside it, in the card's card_nonrefundable account, against the
-- organizer's nonrefundable_credit accounts (one per organizer, ref '', and
-- one per merchant: what was spent there); promotions is what the
-- organizer granted as such credit. The card account names its
-- non-refundable account (nonrefundable_account), so that the terminal
-- debit trigger spends that part first: a debit of d takes min(d, part)
-- from it, as one journal entry of its own, only for cards that have one.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('card', 'merchant', 'store_cash',
    'provider_clearing', 'card_deposits', 'refunds_payable', 'breakage', 'pending_loads', 'bank', 'refund_losses',
    'chargeback_losses', 'card_nonrefundable', 'nonrefundable_credit', 'promotions'));
ALTER TABLE accounts ADD COLUMN nonrefundable_account bigint;

ALTER TABLE topups DROP CONSTRAINT topups_channel_check;
ALTER TABLE topups ADD CONSTRAINT topups_channel_check CHECK (channel IN ('cash', 'online', 'transfer', 'voucher', 'correction'));

-- Corrections above this amount need a second HQ person's approval.
ALTER TABLE organizers ADD COLUMN correction_approval_above bigint NOT NULL DEFAULT 5000
    CHECK (correction_approval_above >= 0);

-- A correction of a posted payment: charged back to the payment's
-- merchant and credited to its card as a load (a topup with the
-- correction's id), once posted.
CREATE TABLE corrections (
    org_id        bigint NOT NULL,
    correction_id uuid NOT NULL,
    payment_id    uuid NOT NULL,
    card_id       bytea NOT NULL,
    merchant_id   text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    reason        text NOT NULL,
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('awaiting_approval', 'posted')),
    approved_by   text NOT NULL DEFAULT '',
    posted_at     timestamptz,
    PRIMARY KEY (org_id, correction_id),
    CHECK ((status = 'posted') = (posted_at IS NOT NULL))
);
CREATE INDEX corrections_payment ON corrections (org_id, payment_id);

-- Vouchers: issued by HQ in batches, single use; only a hash of each code
-- is kept (the codes are shown once, when issued).
CREATE TABLE voucher_batches (
    org_id     bigint NOT NULL,
    batch_id   uuid NOT NULL,
    event_id   text NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    count      integer NOT NULL CHECK (count > 0),
    expires_at timestamptz NOT NULL,
    label      text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, batch_id)
);
CREATE TABLE vouchers (
    org_id      bigint NOT NULL,
    code_hash   bytea NOT NULL,
    batch_id    uuid NOT NULL,
    redeemed_at timestamptz,
    card_id     bytea,
    load_id     uuid,
    redeemed_by text NOT NULL DEFAULT '',
    PRIMARY KEY (org_id, code_hash),
    CHECK ((redeemed_at IS NULL) = (load_id IS NULL))
);

-- The terminal debit trigger of migration 017, which also spends the
-- non-refundable part of the cards debited first. Cards without one cost
-- a NULL column read.
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
    IF nr_accts IS NOT NULL THEN
        PERFORM ledger_spend_nonrefundable(nr_cards, nr_accts, array_agg(t.org_id), array_agg(t.card_account),
                    array_agg(t.merchant_id), array_agg(t.card_seq), array_agg(t.txn_id), array_agg(t.amount))
           FROM new_txs t WHERE t.card_account IS NOT NULL;
    END IF;
    RETURN NULL;
END
$fn$;

-- ledger_spend_nonrefundable takes what the debits of cards with a
-- non-refundable part spent out of that part, in card sequence order, up
-- to the part: one journal entry per card and merchant (card_nonrefundable
-- → the merchant's nonrefundable_credit, the organizer's where the
-- merchant has none), applied by the postings trigger. Per merchant, so
-- that uploads of different merchants share no account row. The cards'
-- accounts are locked by the debits.
CREATE FUNCTION ledger_spend_nonrefundable(cards bigint[], nrs bigint[], orgs bigint[], accts bigint[], merchants text[],
        seqs bigint[], txns uuid[], amounts bigint[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    -- plpgsql, not sql: its statement's plan is cached per connection.
    WITH n AS (SELECT q.card, q.nr, x.org_id, x.ref, x.side * x.balance AS avail
                 FROM unnest(cards, nrs) q(card, nr)
                 JOIN (SELECT DISTINCT o FROM unnest(orgs) o) g ON true
                 JOIN accounts x ON x.org_id = g.o AND x.account_id = q.nr
                WHERE x.side * x.balance > 0),
         t AS (SELECT n.org_id, n.nr, n.ref, d.merchant, d.amount, n.avail,
                      sum(d.amount) OVER (PARTITION BY n.org_id, n.nr ORDER BY d.seq, d.txn) AS cum
                 FROM unnest(orgs, accts, merchants, seqs, txns, amounts) d(org_id, acct, merchant, seq, txn, amount)
                 JOIN n ON n.org_id = d.org_id AND n.card = d.acct),
         s AS (SELECT org_id, nr, ref, merchant, sum(greatest(0, least(amount, avail - (cum - amount))))::bigint AS amount
                 FROM t GROUP BY org_id, nr, ref, merchant),
         e AS (SELECT s.org_id, s.nr, s.merchant, s.amount, coalesce(m.account_id, o.account_id) AS contra,
                      (row_number() OVER (PARTITION BY s.org_id, s.merchant ORDER BY s.nr) - 1) AS k
                 FROM s
                 LEFT JOIN accounts m ON m.org_id = s.org_id AND m.kind = 'nonrefundable_credit' AND m.ref = s.merchant
                 JOIN accounts o ON o.org_id = s.org_id AND o.kind = 'nonrefundable_credit' AND o.ref = ''
                WHERE s.amount > 0),
         -- One journal entry per merchant (and 10,000 cards): line 1
         -- credits the merchant's account, the others debit the cards'.
         g AS (SELECT org_id, merchant, contra, k / 10000 AS chunk, sum(amount)::bigint AS total, gen_random_uuid() AS txn_id
                 FROM e GROUP BY org_id, merchant, contra, k / 10000),
         j AS (INSERT INTO journal (org_id, txn_id, kind, ref, at)
               SELECT org_id, txn_id, 'nonrefundable_spent', merchant, now() FROM g)
    INSERT INTO postings (org_id, txn_id, line, account_id, amount)
    SELECT g.org_id, g.txn_id, 1, g.contra, -g.total FROM g
    UNION ALL
    SELECT e.org_id, g.txn_id, (e.k % 10000 + 2)::smallint, e.nr, e.amount
      FROM e JOIN g ON g.org_id = e.org_id AND g.merchant = e.merchant AND g.chunk = e.k / 10000;
END
$fn$;

-- The organizers' new accounts, and each merchant's nonrefundable_credit
-- (ref: the merchant id): the voucher credit spent at it.
INSERT INTO accounts (org_id, kind, ref, side, floor)
SELECT o.org_id, k.kind, '', 1, NULL FROM organizers o CROSS JOIN (VALUES ('nonrefundable_credit'), ('promotions')) k(kind)
ON CONFLICT DO NOTHING;
INSERT INTO accounts (org_id, kind, ref, side, floor)
SELECT org_id, 'nonrefundable_credit', merchant_id, 1, NULL FROM merchants
ON CONFLICT DO NOTHING;
