package apitype

import "github.com/loopcard/loopcard/personalize/handover"

// StoreKeyRequest is the body of POST /v1/hq/stores/{store}/key: the
// store's Ed25519 verifier key in signed-note form, named
// handover.StoreKeyName(org, store).
type StoreKeyRequest struct {
	Vkey string `json:"vkey"`
}

// AppendResponse says where entries went in the custody log.
type AppendResponse struct {
	First int64 `json:"first"`
	Size  int64 `json:"size"`
	// Again is true when the log had the entry already (a replay of the
	// same signed bytes): nothing was appended, and First and Size are 0.
	Again bool `json:"already_recorded,omitempty"`
}

// HandOverRequest is the body of POST /v1/hq/batches/{batch}/handover.
type HandOverRequest struct {
	Store string `json:"store"`
	Count int64  `json:"count"`
	// First, if set, is the first card (a card number such as 1-00001) of
	// the run of Count cards handed over in slot order: the custody log
	// then holds those cards at the store, and no other store sells them.
	First string `json:"first,omitempty"`
}

// EntriesRequest carries custody log entries signed at the store with its
// own key: a receipt, or card events (the kinds whose handover.Kind routes them to card-events) with their seal.
type EntriesRequest struct {
	Entries []handover.Entry `json:"entries"`
}
