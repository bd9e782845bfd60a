-- Refunds wait for the terminals (issue 17, M5). A refund request records
-- the intent and puts the card on the refund list; its amount is fixed at
-- payout, once every terminal of the card's event has uploaded since the
-- request or a sync window has passed, so that debits a terminal took
-- offline before the request are paid from the card first.
--
-- amount and fixed_at: NULL until the payout fixes them. Requests made
-- before this migration were fixed (and booked) when requested.
-- nothing_due: at payout nothing was left on the card to pay.
ALTER TABLE refunds ADD COLUMN fixed_at timestamptz;
UPDATE refunds SET fixed_at = requested_at;
ALTER TABLE refunds ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE refunds DROP CONSTRAINT refunds_amount_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_amount_check CHECK (amount >= 0);
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check CHECK (status IN ('requested', 'exported', 'nothing_due'));
ALTER TABLE refunds ADD CONSTRAINT refunds_fixed CHECK (
    (amount IS NULL) = (fixed_at IS NULL)
    AND (status <> 'exported' OR amount > 0)
    AND (status <> 'nothing_due' OR amount = 0));
CREATE INDEX refunds_open ON refunds (org_id, requested_at) WHERE status = 'requested';

-- A terminal has synced since a request when it uploaded a transaction
-- after it (terminal_txs.received_at) or enrolled after it.

-- What the organizer paid a merchant for a debit that reached the ledger
-- after its card's refund was paid out (debit-normal, no floor).
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('card', 'merchant', 'store_cash',
    'provider_clearing', 'card_deposits', 'refunds_payable', 'breakage', 'pending_loads', 'bank', 'refund_losses'));
INSERT INTO accounts (org_id, kind, ref, side, floor)
    SELECT org_id, 'refund_losses', '', 1, NULL FROM organizers
    ON CONFLICT (org_id, kind, ref) DO NOTHING;

-- refunded_card: a debit of a card whose refund was paid out, posted
-- against refund_losses so that the merchant is paid; a notice for HQ.
-- (write_conflict is migration 022's, card alert review.)
ALTER TABLE card_alerts DROP CONSTRAINT card_alerts_kind_check;
ALTER TABLE card_alerts ADD CONSTRAINT card_alerts_kind_check CHECK (kind IN
    ('clone', 'chain', 'unfunded', 'wrong_merchant', 'terminal_revoked', 'sequence_gap', 'write_conflict', 'refunded_card'));
