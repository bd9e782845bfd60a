-- content_hash was SHA-256 of the signed payload, which raw holds: the
-- ledger computes it from raw on the rare re-upload instead of writing 33
-- more bytes with every terminal transaction.
ALTER TABLE terminal_txs DROP COLUMN content_hash;
