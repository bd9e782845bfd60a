// Package storeclient is the store client: what a store's till does with a
// Loopcard card and the API with its store token. It sells cards for cash
// (deposit and initial credit), tops cards up with cash, reads a card's
// balance, and appends the store's signed custody entries (receipts, card
// events) through the API, so a store needs neither HQ's database nor HQ's
// HSM.
//
// # State
//
// The client keeps a state directory: its X25519 key-agreement key
// (KexFile, made on first use and registered with PUT
// /v1/stores/{store}/kex-key), to which the API wraps the card keys of one
// load, and a journal of money requests (JournalFile).
//
// # One sale or top-up
//
// The order against the journal is the terminal's durable-queue discipline:
//
//  1. The request (kind, card, amounts) with a new idempotency key is
//     appended to the journal and synced to disk before it is sent.
//  2. The API records it (POST /v1/stores/{store}/sales or /topups, with
//     the key as Idempotency-Key): the cash is the store's, the credit a
//     pending load.
//  3. The client fetches the card's credit key and read key for that one
//     load (POST /v1/stores/{store}/credit-keys, valid a minute), and
//     writes the load onto the card in one DESFire transaction with a
//     record carrying the load's id (terminal.App.WriteLoad, the code the
//     terminal writes its online loads with).
//  4. It confirms the card write (POST /v1/stores/{store}/loads/{load}/written)
//     and marks the request done in the journal.
//
// A client that crashes or loses the network anywhere in between leaves the
// request open in the journal. The next time that card is presented (Sell,
// TopUp and Balance do it first, as does Settle), the request is sent again
// with the same idempotency key (the ledger records it once), a load whose
// record is on the card already is confirmed without being written again,
// and a load the card never committed is written then. So cash taken at the
// till is never lost and never loaded twice.
//
// # Balance
//
// The card's balance cannot be read with the read key (key 3): DESFire
// grants every key with the read right of a value file the right to debit
// it, so the default layout lets only the debit and credit keys read it, and
// the recent records (32 bytes, all used) carry amounts but no balance. So
// Balance asks for the card's credit key through the audited balance-key
// route (POST /v1/stores/{store}/balance-keys, valid a minute, with the
// read key for the card's number), and compares what the card holds with
// the ledger's balance and pending loads (GET
// /v1/stores/{store}/pending-loads). A credit a store made with that key
// without a load is not in the ledger: the card's next debit shows a
// balance chain that does not join, which raises an alert.
package storeclient
