-- Every state of a provider's payment (issue 24): a payment still
-- processing is a topup in 'processing' (nothing booked) until the
-- provider confirms it ('pending', booked as now) or it fails or expires
-- ('failed', or 'abandoned' when its checkout expired or no answer came
-- in time; 'expired' stays what the close of a refund window does to a
-- pending load). A payment charged back ('disputed_at') takes its
-- credit back and books what was already spent as a chargeback loss. What
-- the provider refunded outside a payout run ('provider_refunded') is
-- taken back from the card the same way.
ALTER TABLE topups DROP CONSTRAINT topups_status_check;
ALTER TABLE topups ADD CONSTRAINT topups_status_check CHECK (status IN
    ('processing', 'pending', 'loaded', 'refunded', 'expired', 'failed', 'abandoned'));
ALTER TABLE topups ADD COLUMN provider_refunded bigint NOT NULL DEFAULT 0 CHECK (provider_refunded >= 0);
ALTER TABLE topups ADD COLUMN disputed_at timestamptz;
-- paid: what the cardholder paid through the provider (amount may shrink
-- when a pending load is partly taken back); a payout run refunds up to
-- paid - provider_refunded - its earlier provider refunds to the payment.
ALTER TABLE topups ADD COLUMN paid bigint NOT NULL DEFAULT 0 CHECK (paid >= 0);
UPDATE topups SET paid = amount WHERE channel = 'online';
CREATE INDEX topups_processing ON topups (org_id, created_at) WHERE status = 'processing';
CREATE INDEX topups_provider_payment ON topups (provider, provider_ref) WHERE provider <> '';

-- What chargebacks cost the organizer: credit spent before the provider
-- took the payment back (debit-normal, no floor).
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('card', 'merchant', 'store_cash',
    'provider_clearing', 'card_deposits', 'refunds_payable', 'breakage', 'pending_loads', 'bank', 'refund_losses',
    'chargeback_losses'));
INSERT INTO accounts (org_id, kind, ref, side, floor)
    SELECT org_id, 'chargeback_losses', '', 1, NULL FROM organizers
    ON CONFLICT (org_id, kind, ref) DO NOTHING;

-- chargeback: the provider took a payment back; an active card is blocked
-- until HQ reviews it. provider_refund: the provider refunded a payment
-- outside a payout run (its dashboard) after some of the credit was on the
-- card or spent; a notice.
ALTER TABLE card_alerts DROP CONSTRAINT card_alerts_kind_check;
ALTER TABLE card_alerts ADD CONSTRAINT card_alerts_kind_check CHECK (kind IN
    ('clone', 'chain', 'unfunded', 'wrong_merchant', 'terminal_revoked', 'sequence_gap', 'write_conflict', 'refunded_card',
     'chargeback', 'provider_refund'));

-- unknown_state: the provider announced a payment in a state nobody
-- documented; parked for HQ, nothing credited.
ALTER TABLE unmatched_payments DROP CONSTRAINT unmatched_payments_reason_check;
ALTER TABLE unmatched_payments ADD CONSTRAINT unmatched_payments_reason_check CHECK (reason IN
    ('unknown_card', 'bad_card', 'currency', 'unknown_state'));

-- A payout run refunds what was paid online back to the payment, through
-- the provider, and the rest by SEPA. Each provider refund is a line,
-- booked with the run (refunds payable -> provider clearing) and sent
-- after it commits, with its line id as the provider's idempotency key.
CREATE TABLE provider_refunds (
    org_id bigint NOT NULL,
    line_id uuid NOT NULL,
    refund_id uuid NOT NULL,
    payout_id uuid NOT NULL,
    provider text NOT NULL,
    payment_ref text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    provider_refund_id text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    -- refund_id names a row of refunds (same org_id); no foreign key, so
    -- that organizers can live apart (docs/scale.md, TestShardable).
    PRIMARY KEY (org_id, line_id)
);
CREATE INDEX provider_refunds_payment ON provider_refunds (org_id, provider, payment_ref);
CREATE INDEX provider_refunds_unsent ON provider_refunds (org_id) WHERE status = 'pending';
ALTER TABLE payouts ADD COLUMN provider_count integer NOT NULL DEFAULT 0;
ALTER TABLE payouts ADD COLUMN provider_total bigint NOT NULL DEFAULT 0;
