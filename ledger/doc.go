// Package ledger is Loopcard's double-entry money ledger on PostgreSQL:
// accounts and balanced postings in integer minor units, terminal
// transactions accepted exactly once with each card's sequence and balance
// chain checked, cash and online top-ups, card sales, refunds, breakage,
// store day closes and reports.
//
// # Money
//
// Amounts are int64 minor units (cents). A posting's amount is positive for a
// debit and negative for a credit; an account's balance is the sum of its
// postings, so the sum of all balances is zero at every commit. Each account
// has a normal side: card balances, merchant payables, deposits, refunds
// payable, pending loads and breakage are credit-normal (what the organizer
// owes), store cash, payment-provider clearing, the bank and refund losses
// are debit-normal (what it holds, or paid without a card's credit). Balance reports the normal-side amount, which for a card is
// the credit on it.
//
// The database enforces the invariants as well as this package: a statement
// trigger on postings rejects unbalanced transactions and applies the
// postings to the balances (nothing else may change a balance), and a check
// constraint keeps every balance at or above its floor.
//
// A posted terminal debit, nearly every transaction of the ledger, is its
// own journal entry: its terminal_txs row names the card account it debits
// and the merchant account it credits, and a statement trigger on
// terminal_txs moves both balances by its amount, as the postings trigger
// does for other entries. The ledger_postings view lists every posting of
// both kinds; Verify checks the balances against it. Likewise a debit keeps
// its own place in the card's sequence chain (a partial unique index on
// terminal_txs), and the card_chain view joins it with the other card
// writes (card_events). Each card account also keeps the tip of its card's
// chain (the highest sequence written and the balance after it), moved by
// triggers on both tables and checked by Verify; a debit beyond the tip,
// the usual case, is checked against the tip alone. A row stores the
// transaction's fields and its signature; the encoding is canonical, so
// they give back the signed bytes.
//
// # Refunds
//
// A refund request records the intent and puts the card on the refund
// list; its amount is fixed at payout (ExportPayouts), once every terminal
// of the card's event has uploaded since the request or a sync window has
// passed, so that payments the card made offline before the request are
// paid from its credit first. A debit that reaches the ledger after its
// card's refund was paid out is posted against RefundLosses, so that the
// merchant is paid, with a ReasonRefundedCard alert.
//
// # Credit kinds and corrections
//
// A card's credit (its card account) has a non-refundable part (vouchers,
// comps) kept in its own CardNonRefundable account against the
// organizer's NonRefundableCredit; the card account names it, and a
// terminal debit spends it first: the upload reads it with the card's lock
// and names on the debit's terminal_txs row what it spends (migration
// 029), which the trigger posts with the debit, as the ledger_postings
// view shows. Refunds pay the rest; breakage takes both. A load's
// non-refundable part is topups.nonrefundable (a voucher's whole amount).
// A correction of a posted payment (RequestCorrection) charges its
// merchant and credits its card as a pending load, giving back the
// refundable part the payment spent first and then its non-refundable part
// as such; above the organizer's threshold another person approves it
// (ApproveCorrection). A card whose refund was paid out gets none
// (ErrCreditLeft); a replaced card's goes to the card that replaced it.
//
// # Personal data and unmatched payments
//
// A refund's holder name, IBAN and BIC are stored only sealed by the HSM's
// envelope encryption (Options.Sealer, bound to the organizer and refund);
// ExportPayouts opens them. A provider payment that matches no card is
// parked (UnmatchedPayments) with a warning, and acknowledged, so that the
// provider stops delivering it.
//
// # Throughput
//
// Uploads verify signatures with Ed25519 batch verification, in which the
// signatures of one terminal share one key term (internal/edbatch), falling
// back to one by one to find a bad signature. They take two round trips:
// BEGIN with the locking read, the writes with COMMIT; a third reads the
// card chains only when a debit lands at or below its card's tip (late,
// out of order, or a clone), and another the statuses of cards for which
// an alert is raised. The locking read is one index scan of the card
// accounts by id: the ledger remembers each card's account, which never
// changes, and checks it against the account row's reference. From 32
// transactions the rows are written with binary COPY, which costs two more
// round trips and saves the server more per row; fewer go in with one
// INSERT. Every statement of an upload
// is planned generically, once per connection (plan_cache_mode), because
// its arrays of keys would otherwise be planned anew on each execution.
// The first attempt assumes that
// every transaction is new and leaves it to the unique indexes to say
// otherwise; only a re-upload pays for looking ids and terminal sequences
// up. Submit coalesces concurrent submissions into shared database
// transactions (group commit), two in flight by default, waiting up to 200
// us for as many submitters as the last batch carried, and verifies their
// signatures together like an upload's. scripts/bench ledger measures
// both against pgbench.
//
// # Locking
//
// Every database transaction locks in one fixed order: card accounts in
// account-id order first (the lock on a card's account also guards the
// card's status, sequence chain and chain tip), then every other account in
// account-id order. No transaction waits for a card while holding another
// account, so no two transactions can deadlock, and no balance update is
// lost.
package ledger
