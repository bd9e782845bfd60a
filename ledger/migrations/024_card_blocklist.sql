-- Lost and stolen cards (issue 21): a blocklist that reaches offline
-- terminals, and a card replaced with its balance.
--
-- A card is on its organizer's blocklist while it is blocked or replaced.
-- The list is versioned per organizer: every change (a card listed or
-- taken off) takes the next version, and each card's row keeps the version
-- of its last change, so that a terminal that holds version N gets the
-- rows changed after N as a delta. A trigger on cards keeps the list, so
-- that every way a card is blocked (HQ, a store, the cardholder, a clone
-- an upload found) and unblocked (HQ after review) reaches the terminals.
ALTER TABLE cards DROP CONSTRAINT cards_status_check;
ALTER TABLE cards ADD CONSTRAINT cards_status_check CHECK (status IN ('active', 'blocked', 'refunded', 'replaced'));

CREATE TABLE card_blocklist_heads (
    org_id  bigint PRIMARY KEY,
    version bigint NOT NULL CHECK (version > 0)
);

CREATE TABLE card_blocklist (
    org_id  bigint NOT NULL,
    card_id bytea NOT NULL,
    listed  boolean NOT NULL,
    version bigint NOT NULL, -- the version of the row's last change
    PRIMARY KEY (org_id, card_id)
);
CREATE INDEX card_blocklist_version ON card_blocklist (org_id, version);

CREATE FUNCTION ledger_card_blocklist() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    now_listed boolean := NEW.status IN ('blocked', 'replaced');
    was_listed boolean := TG_OP = 'UPDATE' AND OLD.status IN ('blocked', 'replaced');
    v bigint;
BEGIN
    IF now_listed = was_listed THEN
        RETURN NULL;
    END IF;
    -- The head's row lock orders the versions: they commit in order.
    INSERT INTO card_blocklist_heads (org_id, version) VALUES (NEW.org_id, 1)
        ON CONFLICT (org_id) DO UPDATE SET version = card_blocklist_heads.version + 1
        RETURNING version INTO v;
    INSERT INTO card_blocklist (org_id, card_id, listed, version) VALUES (NEW.org_id, NEW.card_id, now_listed, v)
        ON CONFLICT (org_id, card_id) DO UPDATE SET listed = EXCLUDED.listed, version = EXCLUDED.version;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER cards_blocklist AFTER INSERT OR UPDATE OF status ON cards
    FOR EACH ROW EXECUTE FUNCTION ledger_card_blocklist();

-- Cards blocked before this migration are on the list at version 1.
INSERT INTO card_blocklist_heads (org_id, version)
    SELECT DISTINCT org_id, 1 FROM cards WHERE status = 'blocked';
INSERT INTO card_blocklist (org_id, card_id, listed, version)
    SELECT org_id, card_id, true, 1 FROM cards WHERE status = 'blocked';

-- blocklist_synced: every transaction the terminal took while its
-- blocklist was older than this version has reached the ledger (the
-- terminal says so in an upload that empties its queue).
ALTER TABLE terminals ADD COLUMN blocklist_synced bigint NOT NULL DEFAULT 0;

-- A tap a terminal refused offline because the card was on its blocklist,
-- uploaded later; for HQ, it moves no money.
CREATE TABLE terminal_refused_taps (
    org_id      bigint NOT NULL,
    tap_id      uuid NOT NULL,
    terminal_id text NOT NULL,
    card_id     bytea NOT NULL,
    at          timestamptz NOT NULL,
    blocklist_version bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, tap_id)
);
CREATE INDEX terminal_refused_taps_card ON terminal_refused_taps (org_id, card_id);

-- Blocking and replacing are actions on a card, next to HQ's reviews and
-- unblockings.
ALTER TABLE card_alert_actions DROP CONSTRAINT card_alert_actions_action_check;
ALTER TABLE card_alert_actions ADD CONSTRAINT card_alert_actions_action_check
    CHECK (action IN ('review', 'unblock', 'block', 'replace'));

-- A credit moved from a replaced card to its new card is a load of the
-- new card (pending until the writer confirms it).
ALTER TABLE topups DROP CONSTRAINT topups_channel_check;
ALTER TABLE topups ADD CONSTRAINT topups_channel_check CHECK (channel IN ('cash', 'online', 'transfer'));

-- How much of a replaced card's balance waits for the terminals: the
-- larger of hold_cents and hold_percent of the balance (at most all of it).
ALTER TABLE organizers ADD COLUMN replacement_hold_cents bigint NOT NULL DEFAULT 2500
    CHECK (replacement_hold_cents >= 0);
ALTER TABLE organizers ADD COLUMN replacement_hold_percent smallint NOT NULL DEFAULT 0
    CHECK (replacement_hold_percent BETWEEN 0 AND 100);

-- A card replaced by another: the balance less the hold moved at once
-- (first_load), the rest (rest_load) once every active terminal of the
-- card's event synced past blocklist_version, or the window passed.
CREATE TABLE card_replacements (
    org_id         bigint NOT NULL,
    replacement_id uuid NOT NULL,
    old_card       bytea NOT NULL,
    new_card       bytea NOT NULL,
    store_id       text NOT NULL DEFAULT '',
    actor          text NOT NULL,
    balance        bigint NOT NULL CHECK (balance >= 0),
    hold           bigint NOT NULL CHECK (hold >= 0 AND hold <= balance),
    first_load     uuid,
    blocklist_version bigint NOT NULL,
    created_at     timestamptz NOT NULL,
    rest_amount    bigint CHECK (rest_amount >= 0),
    rest_load      uuid,
    settled_at     timestamptz,
    PRIMARY KEY (org_id, replacement_id),
    UNIQUE (org_id, old_card),
    CHECK ((settled_at IS NULL) = (rest_amount IS NULL))
);
CREATE INDEX card_replacements_open ON card_replacements (org_id, created_at) WHERE settled_at IS NULL;
