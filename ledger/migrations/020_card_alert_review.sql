-- Card alerts are reviewed by HQ, and a blocked card is unblocked only by
-- HQ after review (issue 17, M4).
--
-- blocking: the alert blocked its card when it was raised. Only
-- terminal-signed evidence blocks (a clone, a chain that does not join or
-- an unfunded debit between signed offline transactions); a card write a
-- store or station reports that conflicts with the chain is a
-- write_conflict alert for HQ and blocks nothing.
ALTER TABLE card_alerts ADD COLUMN blocking boolean NOT NULL DEFAULT false;
UPDATE card_alerts SET blocking = true WHERE kind IN ('clone', 'chain', 'unfunded');
ALTER TABLE card_alerts DROP CONSTRAINT card_alerts_kind_check;
ALTER TABLE card_alerts ADD CONSTRAINT card_alerts_kind_check
    CHECK (kind IN ('clone', 'chain', 'unfunded', 'wrong_merchant', 'terminal_revoked', 'sequence_gap', 'write_conflict'));

-- HQ's review of an alert: who, when and why. A reviewed alert stays
-- listed, marked reviewed.
ALTER TABLE card_alerts ADD COLUMN reviewed_at timestamptz,
    ADD COLUMN reviewed_by text,
    ADD COLUMN review_reason text;
ALTER TABLE card_alerts ADD CONSTRAINT card_alerts_review
    CHECK ((reviewed_at IS NULL) = (reviewed_by IS NULL) AND (reviewed_at IS NULL) = (review_reason IS NULL));

-- What HQ did about a card's alerts, in order: each review and each
-- unblocking, with who did it and why. Rows are never changed.
CREATE TABLE card_alert_actions (
    org_id    bigint NOT NULL,
    action_id uuid NOT NULL,
    card_id   bytea NOT NULL,
    alert_id  uuid,
    action    text NOT NULL CHECK (action IN ('review', 'unblock')),
    actor     text NOT NULL,
    reason    text NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, action_id)
);
CREATE INDEX card_alert_actions_card ON card_alert_actions (org_id, card_id, at);

-- A store's stock is kept per batch, so that a sale can be checked
-- against it: a store sells only cards of a batch the custody log says it
-- received and still holds (issue 17, M3). A receipt's move id is the
-- first 16 bytes of the SHA-256 of its custody log entry (api.AppendReceipts),
-- which gives the batch of the receipts recorded before.
ALTER TABLE store_card_moves ADD COLUMN batch_no bigint;
UPDATE store_card_moves m SET batch_no = (convert_from(e.entry, 'UTF8')::jsonb ->> 'batch')::bigint
  FROM handover_entries e
 WHERE m.kind = 'received' AND e.org_id = m.org_id
   AND encode(substring(sha256(e.entry) FROM 1 FOR 16), 'hex')::uuid = m.move_id;
CREATE INDEX store_card_moves_batch ON store_card_moves (org_id, store_id, batch_no);

-- A receipt of a handover of a run of cards (the custody log's handed_over
-- with a first card) holds the run: its first slot and how many cards.
-- A card of another store's run is not this store's to sell.
ALTER TABLE store_card_moves ADD COLUMN first_slot integer, ADD COLUMN run_count integer;
ALTER TABLE store_card_moves ADD CONSTRAINT store_card_moves_run
    CHECK ((first_slot IS NULL) = (run_count IS NULL) AND (first_slot IS NULL OR (kind = 'received' AND first_slot > 0 AND run_count > 0)));
CREATE INDEX store_card_moves_runs ON store_card_moves (org_id, batch_no, first_slot) WHERE first_slot IS NOT NULL;
