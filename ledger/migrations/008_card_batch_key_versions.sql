-- The versions of the base keys a batch's cards are written with
-- (personalize/batch): pinned by the first station that works on the batch,
-- so that every station and every restart finishes a half-done card with
-- the keys it was started with, even after a key rotation.

ALTER TABLE card_batches ADD COLUMN key_versions jsonb NOT NULL DEFAULT '{}';
