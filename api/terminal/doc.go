// Package terminal is the reference terminal: what a bar or shop point of
// sale does with a Loopcard card and the API, written to be copied by
// vendors. It enrols once with a one-time token (an Ed25519 signing key and
// an X25519 key-agreement key, kept in its state directory), fetches and
// renews the event's session key (the event debit key, delivered wrapped to
// its key-agreement key), debits cards offline, signs every transaction
// (ledger/terminaltx), keeps them in a durable queue on disk and uploads them
// in batches with retry. It imports the wire types (api/apitype) and the
// software key derivations (keys/keyderiv), never the server, the database
// or PKCS#11: it builds with CGO_ENABLED=0 (cmd/internal/deptest checks).
//
// # One payment
//
// A debit is one DESFire transaction: authenticate with key 1 (the card's
// debit key, diversified from the event debit key), read the balance and the
// card sequence, Debit, write the sequence plus one, write a record to the
// recent file, then CommitTransaction. The order against the queue is:
//
//  1. Everything is read and the transaction is built and signed.
//  2. The signed transaction is appended to the queue as an intent and
//     synced to disk, before CommitTransaction is sent.
//  3. CommitTransaction.
//  4. The outcome is appended: committed (the money was taken), or void
//     when the card answered with an error status (nothing changed on it).
//
// A terminal killed between 2 and 4, or a card torn away during the commit,
// leaves an intent whose outcome is unknown; it is never uploaded as it is.
// It is resolved from the card itself: the next time that card is presented
// to the terminal (Terminal.Debit does it first, as does Terminal.Resolve),
// the card's sequence number and its recent records say whether the
// transaction with that id was committed. So nothing taken from a card is
// lost (the intent was on disk before the card changed) and nothing that
// the card did not commit is ever uploaded. An intent that cannot be
// resolved (the card never comes back) stays in the queue and is reported
// by Stats; if it had committed, the ledger sees the gap in the card's
// balance chain at the card's next transaction.
//
// # Upload
//
// Committed transactions go up in batches (POST /v1/terminal/batches,
// signed with RFC 9421 and naming the current session key). The ledger
// accepts a transaction exactly once, so a batch whose answer was lost is
// simply sent again; accepted, duplicate and held transactions are marked
// done, rejected ones are kept in the queue with their reason and not sent
// again. Failures back off exponentially.
//
// # Loads
//
// Online, WritePendingLoads writes a card's pending loads (online top-ups)
// onto it with a credit key the server derives for that one card and load;
// a load already on the card (its id is in the recent records) is
// confirmed, never written twice. App.WriteLoad is the card-writing part,
// shared with the store client (api/storeclient).
//
// # Point of sale
//
// SyncMenu fetches the merchant's menu (also with every session key) and
// keeps it in the state directory; Menu reads it offline. Items prices a
// basket from it and Pay takes it as a debit of version 2 carrying the
// lines. A credit back to the card (VoidLast or Void of the card's last
// payment, DepositReturn of cups alone) is online: the ledger books a
// pending load, which is written onto the card in the field at once.
package terminal
