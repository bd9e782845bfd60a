package apitype

import "github.com/loopcard/loopcard/api/keydelivery"

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
}

// SessionKeyRequest is the body of POST /v1/terminal/session-keys. Event
// may be empty: the terminal's own. A terminal gets session keys for its
// event only (see EnrolResponse).
type SessionKeyRequest struct {
	Event string `json:"event,omitempty"`
}

// SessionKeyResponse is a delivered event debit key and the label of the
// base key it was derived from.
type SessionKeyResponse struct {
	keydelivery.Wrapped
	BaseKey string `json:"base_key"`
}

// BatchRequest is the body of POST /v1/terminal/batches: signed terminal
// transactions (ledger/terminaltx encoding), base64 in JSON.
type BatchRequest struct {
	Transactions [][]byte `json:"transactions"`
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
}
