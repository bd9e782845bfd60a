-- Refund payees sealed by the HSM, unmatched provider payments parked for
-- HQ, and room for HOT updates of balances.

-- payee is the refund's holder name, IBAN and BIC as an envelope sealed by
-- the HSM's data-kek (JSON of keys.Envelope), bound to the organizer and
-- refund id; holder_name, iban and bic stay empty for sealed rows (rows
-- written before this migration keep their plaintext).
ALTER TABLE refunds ADD COLUMN payee bytea;
ALTER TABLE refunds ADD CONSTRAINT refunds_payee_sealed
    CHECK (payee IS NULL OR (holder_name = '' AND iban = '' AND bic = ''));

-- A succeeded payment whose card the ledger cannot match (unknown or
-- unreadable card reference, other currency): recorded, acknowledged to the
-- provider, and listed for HQ to pay back or assign by hand.
CREATE TABLE unmatched_payments (
    org_id      bigint NOT NULL,
    provider    text NOT NULL,
    payment_ref text NOT NULL,
    event_id    text NOT NULL,
    card_ref    text NOT NULL,
    amount      bigint NOT NULL,
    currency    text NOT NULL DEFAULT '',
    reason      text NOT NULL CHECK (reason IN ('unknown_card', 'bad_card', 'currency')),
    received_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (org_id, provider, payment_ref)
);

-- Balance updates change no indexed column; free space on each page lets
-- them stay heap-only (HOT), writing no index entries.
ALTER TABLE accounts SET (fillfactor = 50);
