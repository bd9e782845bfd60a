-- Terminal debits keep their place in the card's chain themselves instead of
-- in a card_events row of their own: chained terminal transactions (those
-- taken into the card's sequence and balance chain: posted, or held as
-- unfunded; not clones nor transactions of unknown cards) are unique per
-- card sequence by the partial index below. card_events keeps the other
-- card writes (top-ups and loads written at a store or by a terminal) and
-- the terminal debits recorded before this migration (chained IS NULL), so
-- that card_chain, every card write, holds each write once. A card
-- sequence used in both tables is a clone that the ledger catches under the
-- card's lock, which every writer of a card's chain holds.
ALTER TABLE terminal_txs ADD COLUMN chained boolean;
CREATE UNIQUE INDEX terminal_txs_card_seq ON terminal_txs (org_id, card_id, card_seq) WHERE chained;

CREATE VIEW card_chain AS
    SELECT org_id, card_id, card_seq, txn_id, balance_before, balance_after FROM card_events
    UNION ALL
    SELECT org_id, card_id, card_seq, txn_id, balance_before, balance_after FROM terminal_txs WHERE chained;
