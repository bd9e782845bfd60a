package apitype

import (
	"time"

	"github.com/loopcard/loopcard/api/keydelivery"
)

// PendingLoad is a top-up paid but not yet written onto its card.
type PendingLoad struct {
	ID        string    `json:"id"`
	Card      string    `json:"card"`
	Amount    int64     `json:"amount"`
	CreatedAt time.Time `json:"created_at"`
}

// PendingLoadsResponse answers GET /v1/terminal/pending-loads and GET
// /v1/stores/{store}/pending-loads: the card's pending loads and the
// ledger's balance of the card (confirmed on the card; pending loads are
// not in it).
type PendingLoadsResponse struct {
	Loads   []PendingLoad `json:"loads"`
	Balance int64         `json:"balance"`
}

// LoadWrittenRequest is the body of POST /v1/terminal/loads/{load}/written:
// what the terminal read back after writing the load onto the card.
type LoadWrittenRequest struct {
	Card string `json:"card"`
	// Write is the card's sequence and balances around the credit; it is
	// left out when the terminal found the load on a card that has moved
	// on since (an earlier confirmation was lost), so they are not known.
	Write *CardWrite `json:"write,omitempty"`
}

// CreditKeyRequest is the body of POST /v1/terminal/credit-keys: the card
// and the pending load the terminal is about to write.
type CreditKeyRequest struct {
	Card string `json:"card"`
	Load string `json:"load"`
}

// CreditKeyResponse is the card's credit key (key 2), wrapped for the
// terminal, valid for Limits.CreditKeyTTL, with the load it is for.
type CreditKeyResponse struct {
	keydelivery.Wrapped
	Load   string `json:"load"`
	Amount int64  `json:"amount"`
}
