-- A terminal's identity is fixed at enrolment: organizer, merchant and
-- event. HQ may register the event with the terminal; otherwise enrolment
-- fixes it (the organizer's only event), and an enrolled terminal always
-- has one. Terminals enrolled before this migration keep a NULL event.
ALTER TABLE terminals ADD COLUMN event_id text;

-- Alerts that need HQ without blocking the card: a correctly signed debit
-- that is held because of its terminal (wrong_merchant, terminal_revoked),
-- and a card sequence that skips numbers (sequence_gap).
-- clone, chain and unfunded block the card, as before.
ALTER TABLE card_alerts DROP CONSTRAINT card_alerts_kind_check;
ALTER TABLE card_alerts ADD CONSTRAINT card_alerts_kind_check CHECK (kind IN
    ('clone', 'chain', 'unfunded', 'wrong_merchant', 'terminal_revoked', 'sequence_gap'));

-- A sequence gap closes when the missing debit arrives late (from another
-- terminal, say): its alert is then resolved, kept for the record. Alerts
-- lists the open ones.
ALTER TABLE card_alerts ADD COLUMN resolved_at timestamptz;
