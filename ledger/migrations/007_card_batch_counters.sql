-- Counters that keep slot reservation and completion O(1) per card for
-- batches of up to 99,999 cards (personalize/batch): next_slot is the
-- lowest slot never reserved (slots are reassigned, never freed), and
-- done_count the number of finished cards.

ALTER TABLE card_batches
    ADD COLUMN next_slot  integer NOT NULL DEFAULT 1 CHECK (next_slot > 0),
    ADD COLUMN done_count integer NOT NULL DEFAULT 0 CHECK (done_count >= 0 AND done_count <= card_count);

UPDATE card_batches b SET
    next_slot  = coalesce((SELECT max(c.slot) + 1 FROM batch_cards c WHERE c.org_id = b.org_id AND c.batch_no = b.batch_no), 1),
    done_count = (SELECT count(*) FROM batch_cards c WHERE c.org_id = b.org_id AND c.batch_no = b.batch_no AND c.status = 'done');
