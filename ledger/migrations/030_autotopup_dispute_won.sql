-- Won chargebacks and auto top-up (issue 24).
--
-- A chargeback's journal entry (dispute_txn) is reversed once when the
-- provider closes the dispute as won (dispute_won_at): the organizer has
-- the money back, and what was booked as a loss, taken from the card or
-- from its pending load is put back.
ALTER TABLE topups ADD COLUMN dispute_txn uuid;
ALTER TABLE topups ADD COLUMN dispute_won_at timestamptz;

-- Auto top-up: a card's one rule, set by the cardholder of a claimed
-- profile: reload amount when the balance is below threshold, at most
-- daily_limit a day (UTC). The payment method is the provider's: only its
-- customer and payment-method ids are kept, never card data. A rule waits
-- in 'setup' until the provider says the method is saved; a charge that
-- fails or needs the cardholder disables it (disabled_reason).
CREATE TABLE autotopup_rules (
    org_id          bigint NOT NULL,
    card_id         bytea NOT NULL,
    provider        text NOT NULL,
    customer_ref    text NOT NULL DEFAULT '',
    method_ref      text NOT NULL DEFAULT '',
    amount          bigint NOT NULL CHECK (amount > 0),
    threshold       bigint NOT NULL CHECK (threshold >= 0),
    daily_limit     bigint NOT NULL,
    status          text NOT NULL CHECK (status IN ('setup', 'active', 'disabled')),
    disabled_reason text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (daily_limit >= amount),
    PRIMARY KEY (org_id, card_id)
);

-- Each charge of a rule, once per trigger: its id is the provider's
-- idempotency key, so a retry never charges twice; a card has at most one
-- charge open ('triggered': recorded, the provider not answered yet; or
-- 'processing'), so a
-- second tap while it runs triggers nothing. day is the UTC day the daily
-- limit counts it in.
CREATE TABLE autotopup_charges (
    org_id       bigint NOT NULL,
    charge_id    uuid NOT NULL,
    card_id      bytea NOT NULL,
    provider     text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    day          date NOT NULL,
    status       text NOT NULL CHECK (status IN ('triggered', 'processing', 'succeeded', 'failed', 'requires_action')),
    provider_ref text NOT NULL DEFAULT '',
    reason       text NOT NULL DEFAULT '',
    triggered_at timestamptz NOT NULL,
    attempted_at timestamptz NOT NULL,
    finished_at  timestamptz,
    PRIMARY KEY (org_id, charge_id)
);
CREATE UNIQUE INDEX autotopup_charges_open ON autotopup_charges (org_id, card_id) WHERE status IN ('triggered', 'processing');
CREATE INDEX autotopup_charges_card ON autotopup_charges (org_id, card_id, day);
