package apitype

import (
	"time"

	"github.com/loopcard/loopcard/api/keydelivery"
)

// EnrolRequest is the body of POST /v1/terminals/enrol.
type EnrolRequest struct {
	Org        int64  `json:"org"`
	Terminal   string `json:"terminal"`
	Token      string `json:"token"`
	SigningKey []byte `json:"signing_key"` // Ed25519 public key, 32 bytes
	KexAlg     string `json:"kex_alg"`     // x25519 or p256
	KexKey     []byte `json:"kex_key"`     // the key-agreement public key
}

// EnrolResponse is its answer: the key id to sign requests with, and the
// terminal's identity, fixed at enrolment: the organizer, merchant and
// event it takes payments for (the event HQ registered with the terminal,
// or else the organizer's only event). A terminal signs its debits for
// this merchant and fetches session keys for this event only.
type EnrolResponse struct {
	KeyID     string `json:"key_id"`
	Organizer int64  `json:"organizer"`
	Merchant  string `json:"merchant"`
	Event     string `json:"event"`
	// HQKey is hq-sign's public key (PKIX DER, Ed25519 or ECDSA P-256),
	// which the terminal pins to verify the organizer's blocklist; empty
	// from a server without hq-sign.
	HQKey []byte `json:"hq_key,omitempty"`
}

// SessionKeyRequest is the body of POST /v1/terminal/session-keys. Event
// may be empty: the terminal's own. A terminal gets session keys for its
// event only (see EnrolResponse).
type SessionKeyRequest struct {
	Event string `json:"event,omitempty"`
	// Blocklist is the version of the blocklist the terminal holds (0:
	// none yet); nil asks for no blocklist.
	Blocklist *uint64 `json:"blocklist,omitempty"`
	// Heartbeat is what waits in the terminal's queue.
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// Heartbeat is what waits in a terminal's queue when it sends a request,
// besides the transactions the request uploads: HQ's console shows it.
type Heartbeat struct {
	// Queued is how many transactions wait.
	Queued int `json:"queued"`
	// OldestUnsent is how long the oldest of them has waited, in seconds
	// by the terminal's clock (0 when none waits).
	OldestUnsent int64 `json:"oldest_unsent_s"`
}

// MaxOldestUnsent is the longest wait a heartbeat says (a year and a day).
const MaxOldestUnsent int64 = 366 * 24 * 60 * 60

// SessionKeyResponse is a delivered event debit key and the label of the
// base key it was derived from.
type SessionKeyResponse struct {
	keydelivery.Wrapped
	BaseKey string `json:"base_key"`
	// Blocklist takes the terminal's blocklist to the current version,
	// when it asked for one.
	Blocklist *Blocklist `json:"blocklist,omitempty"`
}

// Blocklist takes a terminal's copy of its organizer's blocklist of cards
// (blocked, lost, stolen or replaced) from version From (0: from nothing,
// Add is the whole list) to Version. Add and Remove are card ids encoded
// as api/blocklist.Encode does (sorted; a length byte, then the id).
// Signature is hq-sign's over api/blocklist.Statement(organizer, Version,
// Count, SHA-256 of the whole list's encoding): the terminal applies the
// delta and verifies the result with the HQ key it pinned at enrolment.
type Blocklist struct {
	From      uint64 `json:"from"`
	Version   uint64 `json:"version"`
	Add       []byte `json:"add,omitempty"`
	Remove    []byte `json:"remove,omitempty"`
	Count     int    `json:"count"`
	Signature []byte `json:"signature"`
}

// RefusedTap is a tap a terminal refused offline because the card was on
// its blocklist, uploaded with a batch.
type RefusedTap struct {
	ID        string    `json:"id"` // a UUID the terminal made
	Card      string    `json:"card"`
	At        time.Time `json:"at"`
	Blocklist uint64    `json:"blocklist"` // the version of the terminal's list
}

// BatchRequest is the body of POST /v1/terminal/batches: signed terminal
// transactions (ledger/terminaltx encoding), base64 in JSON.
type BatchRequest struct {
	Transactions [][]byte `json:"transactions"`
	// Refused are taps refused offline since the last upload.
	Refused []RefusedTap `json:"refused,omitempty"`
	// Blocklist is the version of the blocklist the terminal holds; nil
	// asks for no blocklist in the answer.
	Blocklist *uint64 `json:"blocklist,omitempty"`
	// Synced, set when this batch empties the terminal's queue, is the
	// version of the blocklist it holds: every transaction it took while
	// its list was older has now reached the ledger.
	Synced *uint64 `json:"synced,omitempty"`
	// Heartbeat is what waits in the terminal's queue besides this batch.
	Heartbeat *Heartbeat `json:"heartbeat,omitempty"`
}

// TxResult is the outcome of one uploaded transaction.
type TxResult struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status"` // accepted, held, duplicate or rejected
	Reason string `json:"reason,omitempty"`
}

// BatchResponse lists the outcomes in the order of the upload.
type BatchResponse struct {
	Results []TxResult `json:"results"`
	// Blocklist takes the terminal's blocklist to the current version,
	// when it asked for one.
	Blocklist *Blocklist `json:"blocklist,omitempty"`
}
