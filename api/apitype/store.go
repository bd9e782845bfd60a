package apitype

import "github.com/loopcard/loopcard/api/keydelivery"

// SaleRequest is the body of POST /v1/stores/{store}/sales: a card sold
// for cash, its refundable deposit and initial credit. The request's
// Idempotency-Key header (a UUID) is required and becomes the sale's id;
// the credit is a pending load with that id until the store confirms its
// card write (POST /v1/stores/{store}/loads/{load}/written).
type SaleRequest struct {
	Card    string `json:"card"`
	Deposit int64  `json:"deposit"`
	Credit  int64  `json:"credit"`
}

// MoneyResponse answers a sale or a cash top-up: its id, and the load that
// carries its credit to the card ("" without credit), pending until the
// card write is confirmed.
type MoneyResponse struct {
	ID     string `json:"id"`
	Card   string `json:"card"`
	Amount int64  `json:"amount,omitempty"`
	Load   string `json:"load,omitempty"`
	Status string `json:"status,omitempty"` // pending: the credit is not on the card yet
}

// DayCloseRequest is the body of POST /v1/stores/{store}/day-close: the
// cash counted at the end of a business day (YYYY-MM-DD; see BusinessDay).
type DayCloseRequest struct {
	Day     string `json:"day"`
	Counted int64  `json:"counted"`
}

// DayCloseResponse is the close: expected against counted cash.
type DayCloseResponse struct {
	Store      string `json:"store"`
	Day        string `json:"day"`
	Expected   int64  `json:"expected"`
	Counted    int64  `json:"counted"`
	Difference int64  `json:"difference"`
}

// BusinessDay is the answer of GET /v1/stores/{store}/business-day: the
// organizer's business day, which ends at DayEndHour o'clock in TimeZone
// (an IANA name). The business day of an instant t is the local date of
// t - DayEndHour hours in TimeZone; Today is the server's now's.
type BusinessDay struct {
	TimeZone   string `json:"time_zone"`
	DayEndHour int    `json:"day_end_hour"`
	Today      string `json:"today"`
}

// HeaderIdempotencyKey names the header that makes a money request
// idempotent: a UUID made by the client, sent again with every retry.
const HeaderIdempotencyKey = "Idempotency-Key"

// StoreKexRequest is the body of PUT /v1/stores/{store}/kex-key: the
// store's key-agreement public key (made by the store client in its state
// directory), to which the API wraps the store's per-load card keys. A new
// key replaces the old one.
type StoreKexRequest struct {
	Alg       string `json:"alg"` // x25519 or p256
	PublicKey []byte `json:"public_key"`
}

// StoreCreditKeyResponse answers POST /v1/stores/{store}/credit-keys (body
// CreditKeyRequest): the card's credit key for one pending load and its
// read key (to find a load already on the card), each wrapped for the
// store and valid for Limits.CreditKeyTTL.
type StoreCreditKeyResponse struct {
	Credit keydelivery.Wrapped `json:"credit"`
	Read   keydelivery.Wrapped `json:"read"`
	Load   string              `json:"load"`
	Amount int64               `json:"amount"`
}

// BalanceKeyRequest is the body of POST /v1/stores/{store}/balance-keys.
type BalanceKeyRequest struct {
	Card string `json:"card"`
}

// BalanceKeyResponse carries a key that reads the card's balance and
// sequence (DESFire lets only the debit and credit keys read a value
// file; the store gets the card's credit key, audited and valid a minute)
// and its read key (card info, records).
type BalanceKeyResponse struct {
	Balance keydelivery.Wrapped `json:"balance"`
	Read    keydelivery.Wrapped `json:"read"`
}

// BlockRequest is the body of the routes that block a lost or stolen
// card: POST /v1/hq/cards/{card}/block, /v1/stores/{store}/cards/{card}/block,
// /v1/card/block and /v1/profile/cards/{card}/block.
type BlockRequest struct {
	Reason string `json:"reason"`
}

// BlockResponse answers a block: the card is on the organizer's
// blocklist from Blocklist (its version) on; terminals refuse it once
// they have that version.
type BlockResponse struct {
	Card      string `json:"card"`
	Status    string `json:"status"` // blocked
	Blocklist uint64 `json:"blocklist"`
	Again     bool   `json:"again,omitempty"` // it was blocked already
}

// ReplaceRequest is the body of POST /v1/stores/{store}/replacements: card
// New takes card Old's balance. The Idempotency-Key header is required
// and becomes the replacement's id and the id of its first load.
type ReplaceRequest struct {
	Old    string `json:"old"`
	New    string `json:"new"`
	Reason string `json:"reason"`
}

// ReplaceResponse is a replacement: Old's balance, the hold kept back
// until the terminals synced past Old's block (it follows as a second
// load), and the first load (Balance - Hold, pending until written onto
// New; "" when nothing moved at once).
type ReplaceResponse struct {
	ID        string `json:"id"`
	Old       string `json:"old"`
	New       string `json:"new"`
	Balance   int64  `json:"balance"`
	Hold      int64  `json:"hold"`
	Load      string `json:"load,omitempty"`
	Amount    int64  `json:"amount,omitempty"`
	Blocklist uint64 `json:"blocklist"`
}
