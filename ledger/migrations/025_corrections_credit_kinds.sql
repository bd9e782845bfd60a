-- Corrections of posted payments and credit that is not money (issue 21).
--
-- A card's credit is its card account, what terminals debit. The part of
-- it that is not refundable (vouchers, comps, welcome credit) is kept
-- beside it, in the card's card_nonrefundable account, against the
-- organizer's nonrefundable_credit account; promotions is what the
-- organizer granted as such credit. The card account names its
-- non-refundable account (nonrefundable_account), so that the terminal
-- debit trigger spends that part first: a debit of d takes min(d, part)
-- from it, as one journal entry of its own, only for cards that have one.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('card', 'merchant', 'store_cash',
    'provider_clearing', 'card_deposits', 'refunds_payable', 'breakage', 'pending_loads', 'bank', 'refund_losses',
    'card_nonrefundable', 'nonrefundable_credit', 'promotions'));
ALTER TABLE accounts ADD COLUMN nonrefundable_account bigint;

ALTER TABLE topups DROP CONSTRAINT topups_channel_check;
ALTER TABLE topups ADD CONSTRAINT topups_channel_check CHECK (channel IN ('cash', 'online', 'voucher', 'correction'));

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
-- non-refundable part of the cards debited first.
CREATE OR REPLACE FUNCTION ledger_apply_terminal_debits() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    applied bigint;
    nr_orgs bigint[];
    nr_accts bigint[];
    nr_spent bigint[];
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
            RETURNING d.org_id, d.delta, a.nonrefundable_account AS nr)
    SELECT coalesce(sum(delta), 0),
           array_agg(org_id) FILTER (WHERE nr IS NOT NULL AND delta > 0),
           array_agg(nr) FILTER (WHERE nr IS NOT NULL AND delta > 0),
           array_agg(delta) FILTER (WHERE nr IS NOT NULL AND delta > 0)
      FROM u INTO applied, nr_orgs, nr_accts, nr_spent;
    IF applied <> 0 THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    IF nr_accts IS NOT NULL THEN
        PERFORM ledger_spend_nonrefundable(nr_orgs, nr_accts, nr_spent);
    END IF;
    RETURN NULL;
END
$fn$;

-- ledger_spend_nonrefundable moves what cards spent out of their
-- non-refundable part, up to that part: one journal entry per card
-- (card_nonrefundable → nonrefundable_credit), applied by the postings
-- trigger. The cards' accounts are locked by the debits.
CREATE FUNCTION ledger_spend_nonrefundable(orgs bigint[], accts bigint[], spent bigint[]) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    WITH s AS (SELECT n.org_id, n.account_id, n.ref, least(n.side * n.balance, q.spent) AS amount,
                      (SELECT account_id FROM accounts o WHERE o.org_id = n.org_id AND o.kind = 'nonrefundable_credit' AND o.ref = '') AS contra,
                      gen_random_uuid() AS txn_id
                 FROM unnest(orgs, accts, spent) q(org_id, account_id, spent)
                 JOIN accounts n ON n.org_id = q.org_id AND n.account_id = q.account_id
                WHERE n.side * n.balance > 0),
         j AS (INSERT INTO journal (org_id, txn_id, kind, ref, at)
               SELECT org_id, txn_id, 'nonrefundable_spent', ref, now() FROM s)
    INSERT INTO postings (org_id, txn_id, line, account_id, amount)
    SELECT s.org_id, s.txn_id, p.line, p.account_id, p.amount FROM s
     CROSS JOIN LATERAL (VALUES (1::smallint, s.account_id, s.amount), (2::smallint, s.contra, -s.amount)) p(line, account_id, amount);
END
$fn$;

-- The organizers' new accounts.
INSERT INTO accounts (org_id, kind, ref, side, floor)
SELECT o.org_id, k.kind, '', 1, NULL FROM organizers o CROSS JOIN (VALUES ('nonrefundable_credit'), ('promotions')) k(kind)
ON CONFLICT DO NOTHING;
