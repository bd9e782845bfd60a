-- A terminal transaction's encoding is canonical (terminaltx: exactly one
-- encoding per transaction), so the row's columns and the signature
-- reproduce the signed bytes exactly; storing all of raw as well wrote 172
-- bytes per transaction of which only the 64 of the signature were new.
-- Rows from before this migration keep raw; new rows store the signature
-- alone (ledger.rebuildSigned puts the bytes back together).
ALTER TABLE terminal_txs ALTER COLUMN raw DROP NOT NULL;
ALTER TABLE terminal_txs ADD COLUMN signature bytea;
ALTER TABLE terminal_txs ADD CONSTRAINT terminal_txs_signed CHECK ((raw IS NULL) <> (signature IS NULL));
