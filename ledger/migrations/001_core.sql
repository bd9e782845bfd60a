-- Double-entry core: organizers, accounts, journal entries and postings.
--
-- Sign convention: a posting's amount is positive for a debit and negative
-- for a credit; an account's balance is the sum of its postings. side is the
-- account's normal side (1 debit: assets such as cash; -1 credit: what is owed,
-- such as card balances), and side * balance is what people call the
-- balance. floor, when set, bounds side * balance from below.

CREATE TABLE organizers (
    org_id     bigint PRIMARY KEY CHECK (org_id > 0),
    name       text NOT NULL,
    currency   char(3) NOT NULL DEFAULT 'EUR',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    org_id     bigint NOT NULL,
    account_id bigserial NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('card', 'merchant', 'store_cash', 'provider_clearing',
                   'card_deposits', 'refunds_payable', 'breakage', 'pending_loads', 'bank')),
    ref        text NOT NULL DEFAULT '',
    side       smallint NOT NULL CHECK (side IN (1, -1)),
    floor      bigint,
    balance    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, account_id),
    UNIQUE (org_id, kind, ref),
    CONSTRAINT balance_floor CHECK (floor IS NULL OR side * balance >= floor)
);

-- One journal entry per ledger transaction; txn_id is the terminal's id for
-- terminal transactions and a UUIDv7 made by the ledger otherwise.
CREATE TABLE journal (
    org_id      bigint NOT NULL,
    txn_id      uuid NOT NULL,
    kind        text NOT NULL,
    event_id    text NOT NULL DEFAULT '',
    ref         text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, txn_id)
);
-- Store reports look entries up by kind, store (ref) and time; terminal
-- debits, the bulk of the journal, stay out of this index.
CREATE INDEX journal_store_at ON journal (org_id, kind, ref, at) WHERE kind IN ('cash_topup', 'card_sale');

CREATE TABLE postings (
    org_id     bigint NOT NULL,
    txn_id     uuid NOT NULL,
    line       smallint NOT NULL,
    account_id bigint NOT NULL,
    amount     bigint NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (org_id, txn_id, line)
);
-- No index on account_id: statements and reports go through the journal
-- (kind, ref, time) or the per-kind tables; each index costs every posting.

-- Postings are applied by this statement trigger: every transaction in the
-- statement must balance, every account must exist, and the balances move by
-- exactly the postings, so that the sum of all balances stays zero. Callers
-- lock the accounts first, in the ledger's fixed order.
--
-- The joins below are forced to nested loops over the primary keys: a
-- statement touches few rows of large tables, and the planner cannot know
-- how few rows a transition table holds.
CREATE FUNCTION ledger_apply_postings() RETURNS trigger LANGUAGE plpgsql
    SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off AS $fn$
DECLARE
    n_unbalanced bigint;
    n_orphans bigint;
    n_accounts bigint;
    n_updated bigint;
BEGIN
    -- One statement: apply the postings and count what must be checked.
    WITH d AS (SELECT org_id, account_id, sum(amount) AS delta FROM new_postings GROUP BY org_id, account_id),
         u AS (UPDATE accounts a SET balance = a.balance + d.delta FROM d
                WHERE a.org_id = d.org_id AND a.account_id = d.account_id RETURNING 1)
    SELECT (SELECT count(*) FROM (SELECT 1 FROM new_postings GROUP BY org_id, txn_id HAVING sum(amount) <> 0) x),
           (SELECT count(*) FROM (SELECT DISTINCT org_id, txn_id FROM new_postings) p
             WHERE NOT EXISTS (SELECT 1 FROM journal j WHERE j.org_id = p.org_id AND j.txn_id = p.txn_id)),
           (SELECT count(*) FROM d),
           (SELECT count(*) FROM u)
      INTO n_unbalanced, n_orphans, n_accounts, n_updated;
    IF n_unbalanced > 0 THEN
        RAISE EXCEPTION 'ledger: unbalanced transaction' USING ERRCODE = 'check_violation',
            CONSTRAINT = 'postings_balance';
    END IF;
    IF n_orphans > 0 THEN
        RAISE EXCEPTION 'ledger: postings without a journal entry' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_journal';
    END IF;
    IF n_updated <> n_accounts THEN
        RAISE EXCEPTION 'ledger: posting to an unknown account' USING ERRCODE = 'foreign_key_violation',
            CONSTRAINT = 'postings_account';
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER postings_apply AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_postings();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'ledger: % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER journal_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- Balances change only through postings: a new account starts at zero and
-- no statement outside the postings trigger may set a balance.
CREATE FUNCTION ledger_guard_balance() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.balance = 0 THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.balance = OLD.balance THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger: balances change only through postings' USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER accounts_guard_balance BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION ledger_guard_balance();
CREATE TRIGGER accounts_no_delete BEFORE DELETE OR TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
