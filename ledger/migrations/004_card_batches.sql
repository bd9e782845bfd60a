-- Card batches and the cards personalized for them (personalize/batch).
--
-- A batch is N cards of one event, personalized at a station with one card
-- layout. Each card takes a slot: first reserved with the card's UID before
-- anything is written to the card, then done once the card was read back
-- with its new keys. The QR token is stored only as its SHA-256 hash and the
-- PIN only as a PIN verification value (HMAC in the HSM); neither exists
-- here in clear.

CREATE TABLE card_batches (
    org_id       bigint NOT NULL,
    batch_no     bigint NOT NULL CHECK (batch_no > 0),
    event_id     text NOT NULL,
    card_count   integer NOT NULL CHECK (card_count > 0 AND card_count < 100000),
    layout       jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    PRIMARY KEY (org_id, batch_no)
);

CREATE TABLE batch_cards (
    org_id          bigint NOT NULL,
    batch_no        bigint NOT NULL,
    slot            integer NOT NULL CHECK (slot > 0),
    uid             bytea NOT NULL,
    status          text NOT NULL CHECK (status IN ('reserved', 'done')),
    key_versions    jsonb NOT NULL DEFAULT '{}',
    token_hash      bytea,
    pvv_key_version integer,
    pvv             bytea,
    reserved_at     timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz,
    PRIMARY KEY (org_id, batch_no, slot),
    UNIQUE (org_id, uid),
    UNIQUE (org_id, token_hash),
    CONSTRAINT done_has_secrets CHECK (status = 'reserved' OR
        (token_hash IS NOT NULL AND pvv IS NOT NULL AND pvv_key_version IS NOT NULL AND done_at IS NOT NULL))
);

-- The cardholder's page finds a card by the hash of the token in its URL,
-- which does not name the organizer.
CREATE INDEX batch_cards_token ON batch_cards (token_hash);
