package apitype

import "time"

// CorrectionRequest is the body of POST /v1/hq/corrections and POST
// /v1/stores/{store}/corrections: give back part or all of a posted
// payment (its transaction id), charged back to its merchant and credited
// to its card as a load.
type CorrectionRequest struct {
	Payment string `json:"payment"`
	Amount  int64  `json:"amount"`
	Reason  string `json:"reason"`
}

// Correction is a correction as the ledger records it: awaiting_approval
// (above the organizer's threshold, until a second HQ person approves it)
// or posted. Once posted, Load is the pending load that carries it onto
// the card (it is the correction's id).
type Correction struct {
	ID       string `json:"id"`
	Payment  string `json:"payment"`
	Card     string `json:"card"`
	Merchant string `json:"merchant"`
	Amount   int64  `json:"amount"`
	// NonRefundable is the part of Amount that gives back voucher
	// credit the payment spent: it reaches the card as such.
	NonRefundable int64      `json:"nonrefundable"`
	Reason        string     `json:"reason"`
	Status        string     `json:"status"`
	RequestedBy   string     `json:"requested_by"`
	RequestedAt   time.Time  `json:"requested_at"`
	ApprovedBy    string     `json:"approved_by,omitempty"`
	PostedAt      *time.Time `json:"posted_at,omitempty"`
	Load          string     `json:"load,omitempty"`
}

// CorrectionList answers GET /v1/hq/corrections.
type CorrectionList struct {
	Corrections []Correction `json:"corrections"`
}

// VoucherBatchRequest is the body of POST /v1/hq/vouchers: Count
// single-use vouchers of Amount cents for an event, valid until Expires.
type VoucherBatchRequest struct {
	Event   string    `json:"event"`
	Amount  int64     `json:"amount"`
	Count   int       `json:"count"`
	Expires time.Time `json:"expires"`
	Label   string    `json:"label,omitempty"`
}

// VoucherBatchResponse answers POST /v1/hq/vouchers with the codes, shown
// this once: the ledger keeps only their hashes.
type VoucherBatchResponse struct {
	Batch   string    `json:"batch"`
	Amount  int64     `json:"amount"`
	Expires time.Time `json:"expires"`
	Codes   []string  `json:"codes"`
}

// VoucherBatchInfo is one issued batch of vouchers in VoucherBatchList:
// never its codes.
type VoucherBatchInfo struct {
	Batch     string    `json:"batch"`
	Event     string    `json:"event"`
	Amount    int64     `json:"amount"`
	Count     int       `json:"count"`
	Redeemed  int       `json:"redeemed"`
	Expires   time.Time `json:"expires"`
	Label     string    `json:"label,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// VoucherBatchList answers GET /v1/hq/vouchers: the batches, newest first.
type VoucherBatchList struct {
	Batches []VoucherBatchInfo `json:"batches"`
}

// VoucherRedeemRequest is the body of POST /v1/stores/{store}/vouchers
// (with the card) and POST /v1/card/vouchers (the card is the caller's).
// The code is a secret: it never appears in logs or audit records.
type VoucherRedeemRequest struct {
	Card string `json:"card,omitempty"`
	Code Secret `json:"code"`
}
