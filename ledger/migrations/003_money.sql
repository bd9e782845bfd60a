-- Money in and out: top-ups (cash and online), card sales, refunds and
-- payouts, provider webhook deliveries, store stock and day closes.

CREATE TABLE topups (
    org_id      bigint NOT NULL,
    topup_id    uuid NOT NULL,
    card_id     bytea NOT NULL,
    channel     text NOT NULL CHECK (channel IN ('cash', 'online')),
    store_id    text NOT NULL DEFAULT '',
    provider    text NOT NULL DEFAULT '',
    provider_ref text NOT NULL DEFAULT '',
    amount      bigint NOT NULL CHECK (amount > 0),
    -- pending: paid online, not on the card; loaded: written onto the card;
    -- refunded: paid back with the card's refund; expired: breakage.
    status      text NOT NULL CHECK (status IN ('pending', 'loaded', 'refunded', 'expired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    loaded_at   timestamptz,
    PRIMARY KEY (org_id, topup_id)
);
CREATE INDEX topups_card ON topups (org_id, card_id);
CREATE UNIQUE INDEX topups_provider_ref ON topups (org_id, provider, provider_ref) WHERE provider <> '';

CREATE TABLE provider_events (
    org_id      bigint NOT NULL,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, provider, event_id)
);

CREATE TABLE store_card_moves (
    org_id   bigint NOT NULL,
    move_id  uuid NOT NULL,
    store_id text NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('received', 'sold')),
    count    integer NOT NULL CHECK (count > 0),
    card_id  bytea,
    at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, move_id)
);
CREATE INDEX store_card_moves_store ON store_card_moves (org_id, store_id, at);
CREATE UNIQUE INDEX store_card_moves_sold ON store_card_moves (org_id, card_id) WHERE kind = 'sold';

CREATE TABLE store_day_closes (
    org_id        bigint NOT NULL,
    store_id      text NOT NULL,
    day           date NOT NULL,
    expected_cash bigint NOT NULL,
    counted_cash  bigint NOT NULL,
    closed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, store_id, day)
);

CREATE TABLE refunds (
    org_id       bigint NOT NULL,
    refund_id    uuid NOT NULL,
    card_id      bytea NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    holder_name  text NOT NULL,
    iban         text NOT NULL,
    bic          text NOT NULL DEFAULT '',
    status       text NOT NULL CHECK (status IN ('requested', 'exported')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    payout_id    uuid,
    PRIMARY KEY (org_id, refund_id)
);
CREATE UNIQUE INDEX refunds_card ON refunds (org_id, card_id);

CREATE TABLE payouts (
    org_id     bigint NOT NULL,
    payout_id  uuid NOT NULL,
    message_id text NOT NULL,
    count      integer NOT NULL,
    total      bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, payout_id)
);
