-- Events, merchants, stores, cards and terminals, and the terminal
-- transactions with each card's sequence and balance chain.

CREATE TABLE events (
    org_id          bigint NOT NULL,
    event_id        text NOT NULL,
    name            text NOT NULL,
    refund_deadline timestamptz,
    breakage_at     timestamptz,
    PRIMARY KEY (org_id, event_id)
);

CREATE TABLE merchants (
    org_id      bigint NOT NULL,
    merchant_id text NOT NULL,
    name        text NOT NULL,
    account_id  bigint NOT NULL,
    PRIMARY KEY (org_id, merchant_id)
);

CREATE TABLE stores (
    org_id          bigint NOT NULL,
    store_id        text NOT NULL,
    name            text NOT NULL,
    cash_account_id bigint NOT NULL,
    PRIMARY KEY (org_id, store_id)
);

-- card_id is the card's UID (4..10 bytes).
CREATE TABLE cards (
    org_id        bigint NOT NULL,
    card_id       bytea NOT NULL,
    event_id      text NOT NULL,
    account_id    bigint NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'refunded')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, card_id)
);

-- One row per card sequence number: a second transaction with the same
-- number is a clone.
CREATE TABLE card_events (
    org_id         bigint NOT NULL,
    card_id        bytea NOT NULL,
    card_seq       bigint NOT NULL,
    txn_id         uuid NOT NULL,
    balance_before bigint NOT NULL,
    balance_after  bigint NOT NULL,
    PRIMARY KEY (org_id, card_id, card_seq)
);

CREATE TABLE card_alerts (
    org_id    bigint NOT NULL,
    alert_id  uuid NOT NULL,
    card_id   bytea NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('clone', 'chain', 'unfunded')),
    txn_id    uuid NOT NULL,
    other_txn_id uuid,
    detail    text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, alert_id)
);
CREATE INDEX card_alerts_card ON card_alerts (org_id, card_id);

CREATE TABLE terminals (
    org_id       bigint NOT NULL,
    terminal_id  text NOT NULL,
    merchant_id  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    token_hash   bytea,
    token_expires_at timestamptz,
    public_key   bytea,
    enrolled_at  timestamptz,
    PRIMARY KEY (org_id, terminal_id)
);

-- Every accepted terminal transaction, posted or held, with its signed
-- encoding for audit. content_hash is SHA-256 of the signed bytes.
CREATE TABLE terminal_txs (
    org_id         bigint NOT NULL,
    txn_id         uuid NOT NULL,
    terminal_id    text NOT NULL,
    terminal_seq   bigint NOT NULL,
    card_id        bytea NOT NULL,
    card_seq       bigint NOT NULL,
    amount         bigint NOT NULL,
    balance_before bigint NOT NULL,
    balance_after  bigint NOT NULL,
    merchant_id    text NOT NULL,
    at             timestamptz NOT NULL,
    content_hash   bytea NOT NULL,
    raw            bytea NOT NULL,
    status         text NOT NULL CHECK (status IN ('posted', 'held')),
    hold_reason    text NOT NULL DEFAULT '',
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, txn_id),
    UNIQUE (org_id, terminal_id, terminal_seq)
);
