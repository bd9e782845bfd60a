package apitype

import "time"

// PaymentWebhookResponse acknowledges a provider's webhook delivery.
type PaymentWebhookResponse struct {
	Received bool `json:"received"`
}

// StoreRequest is the body of POST /v1/hq/stores.
type StoreRequest struct {
	Store string `json:"store"`
	Name  string `json:"name"`
}

// TerminalRequest is the body of POST /v1/hq/terminals.
type TerminalRequest struct {
	Terminal string `json:"terminal"`
	Merchant string `json:"merchant"`
	// Event is the event the terminal takes payments for; empty: the
	// organizer's only event, fixed when the terminal enrols.
	Event string `json:"event,omitempty"`
	// TTL is how long the enrolment token is valid, in seconds; 0 means a day.
	TTL int64 `json:"ttl_seconds"`
}

// TerminalResponse carries the one-time enrolment token, shown once.
type TerminalResponse struct {
	Terminal        string    `json:"terminal"`
	EnrolmentToken  string    `json:"enrolment_token"`
	TokenExpiresAt  time.Time `json:"token_expires_at"`
	EnrolmentTarget string    `json:"enrol_at"`
}

// AlertRecord is a suspicious pattern seen by the API or the ledger.
// A ledger alert has an id, a state (open or reviewed) and says whether
// it blocked its card; HQ reviews it (POST /v1/hq/alerts/{alert}/review).
type AlertRecord struct {
	Source       string    `json:"source"` // api or ledger
	ID           string    `json:"id,omitempty"`
	Kind         string    `json:"kind"`
	State        string    `json:"state,omitempty"` // ledger: open or reviewed
	Blocking     bool      `json:"blocking,omitempty"`
	Actor        string    `json:"actor,omitempty"`
	Remote       string    `json:"remote,omitempty"`
	Card         string    `json:"card,omitempty"`
	Detail       string    `json:"detail"`
	RaisedAt     time.Time `json:"raised_at,omitzero"`
	ReviewedBy   string    `json:"reviewed_by,omitempty"`
	ReviewReason string    `json:"review_reason,omitempty"`
	ReviewedAt   time.Time `json:"reviewed_at,omitzero"`
}

// ReviewRequest is the body of POST /v1/hq/alerts/{alert}/review and
// POST /v1/hq/cards/{card}/unblock: why HQ does it, recorded with it.
type ReviewRequest struct {
	Reason string `json:"reason"`
}

// UnblockResponse answers POST /v1/hq/cards/{card}/unblock.
type UnblockResponse struct {
	Card   string `json:"card"`
	Status string `json:"status"`
}

// AuditRecord is one row of the API's audit trail.
type AuditRecord struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	RequestID string    `json:"request_id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target,omitempty"`
	Remote    string    `json:"remote"`
	Outcome   string    `json:"outcome"`
	Status    int       `json:"status"`
	Detail    string    `json:"detail,omitempty"`
}

// TopUpRequest is the body of POST /v1/stores/{store}/topups: cash taken
// at the store for a card. The Idempotency-Key header (a UUID) is required
// and becomes the top-up's id and the id of its load, pending until the
// store confirms the card write (POST /v1/stores/{store}/loads/{load}/written).
type TopUpRequest struct {
	Card   string `json:"card"` // card id (UID) in hex
	Amount int64  `json:"amount"`
}

// CardWrite is what a writer read back after writing a credit onto a card.
type CardWrite struct {
	Seq    uint32 `json:"seq"`
	Before int64  `json:"balance_before"`
	After  int64  `json:"balance_after"`
}

// TerminalInfo is what HQ sees of a terminal.
type TerminalInfo struct {
	Terminal   string     `json:"terminal"`
	Merchant   string     `json:"merchant"`
	Event      string     `json:"event,omitempty"`
	Status     string     `json:"status"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"`
	// LastUpload is when the ledger received the terminal's transaction
	// with the highest terminal sequence number.
	LastUpload  *time.Time `json:"last_upload,omitempty"`
	KexAlg      string     `json:"kex_alg,omitempty"`
	SessionKeys int        `json:"current_session_keys"`
	// HeartbeatAt is when the terminal last said what waits in its queue
	// (with an upload or a session-key fetch): Queued transactions, the
	// oldest waiting since OldestUnsentAt.
	HeartbeatAt    *time.Time `json:"heartbeat_at,omitempty"`
	Queued         int        `json:"queued"`
	OldestUnsentAt *time.Time `json:"oldest_unsent_at,omitempty"`
}

// StoreInfo is what HQ sees of a store: its cash as the ledger has it.
type StoreInfo struct {
	Store string `json:"store"`
	Name  string `json:"name"`
	Cash  int64  `json:"cash"`
}

// OrganizerKey is one key that is the organizer's own, as GET /v1/hq/keys
// shows it: the debit key of one of its events (terminals receive it as
// their session key; its cards carry key 1 diversified from it), the
// version of the platform base key it derives from, and its key check
// value. Platform keys (the base keys, hq-sign, pin, data-kek) are not
// shown to organizers: the platform operator lists them with
// `loopcard keys list`.
type OrganizerKey struct {
	Event   string `json:"event"`
	Kind    string `json:"kind"` // "event-debit"
	BaseKey string `json:"base_key"`
	KCV     string `json:"kcv"`
}

// OrganizerKeysResponse is the answer of GET /v1/hq/keys.
type OrganizerKeysResponse struct {
	Keys []OrganizerKey `json:"keys"`
}

// RefundsResponse answers GET /v1/hq/refunds: the refunds waiting for a
// payout (oldest first, the next payout's order), then the others (newest
// first), at most 1000; never a payee's name or IBAN.
type RefundsResponse struct {
	Waiting int            `json:"waiting"` // how many wait in all
	Refunds []RefundRecord `json:"refunds"`
}

// RefundRecord is one refund as HQ lists it.
type RefundRecord struct {
	ID          string    `json:"id"`
	Card        string    `json:"card"`
	Status      string    `json:"status"`           // pending, paid or nothing_due
	Amount      *int64    `json:"amount,omitempty"` // fixed at payout
	RequestedAt time.Time `json:"requested_at"`
}

// HeldTxsResponse answers GET /v1/hq/held-transactions: the organizer's
// held terminal transactions, the latest received first, at most 1000, and
// how many are held in all.
type HeldTxsResponse struct {
	Held         int            `json:"held"`
	Transactions []HeldTxRecord `json:"transactions"`
}

// HeldTxRecord is one held terminal transaction: the ledger kept it
// without posting it, for Reason.
type HeldTxRecord struct {
	ID         string    `json:"id"`
	Terminal   string    `json:"terminal"`
	Merchant   string    `json:"merchant"`
	Card       string    `json:"card"`
	Amount     int64     `json:"amount"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`          // the terminal's clock
	ReceivedAt time.Time `json:"received_at"` // the server's
}

// AuditVerification answers GET /v1/audit/verify: the organizer's custody
// log exported and verified by the server as `loopcard audit verify
// --hq-key` does offline, with the server's HQ key pinned.
type AuditVerification struct {
	OK            bool      `json:"ok"`
	VerifiedAt    time.Time `json:"verified_at"`
	Entries       int64     `json:"entries"`
	Checkpoints   int       `json:"checkpoints"`
	Size          int64     `json:"size"` // of the latest checkpoint
	Root          string    `json:"root"`
	HQKeyPinned   bool      `json:"hq_key_pinned"`
	Checked       []string  `json:"checked"`           // the checks that passed
	Failure       string    `json:"failure,omitempty"` // the first that failed
	OpenHandovers int       `json:"open_handovers"`    // handed over, not yet received
	Discrepancies int       `json:"discrepancies"`     // received with another count
}

// PayoutRequest runs the payout of the refunds that are due (POST
// /v1/hq/payouts) from the organizer's account Debtor: DryRun reviews the
// run and books nothing; Approve books it if its plan is still the one a
// dry run answered.
type PayoutRequest struct {
	DebtorName string `json:"debtor_name"`
	DebtorIBAN string `json:"debtor_iban"`
	DebtorBIC  string `json:"debtor_bic,omitempty"`
	DryRun     bool   `json:"dry_run,omitempty"`
	Approve    string `json:"approve,omitempty"`
}

// PayoutRun answers POST /v1/hq/payouts: the run's lines and totals, its
// Plan (to approve), and once booked its ID; the booked run's pain.001 file
// is kept (GET /v1/hq/payouts/{payout}/file).
type PayoutRun struct {
	Booked     bool         `json:"booked"`
	ID         string       `json:"id,omitempty"`
	Plan       string       `json:"plan"`
	Count      int          `json:"count"`
	Total      int64        `json:"total"`
	SEPATotal  int64        `json:"sepa_total"`
	Waiting    int          `json:"waiting"`
	NothingDue int          `json:"nothing_due"`
	Lines      []PayoutLine `json:"lines"`
}

// PayoutLine is how one refund of a payout run is paid.
type PayoutLine struct {
	Refund string `json:"refund"`
	Card   string `json:"card"`
	Amount int64  `json:"amount"`
	SEPA   int64  `json:"sepa"`
}

// PayoutList answers GET /v1/hq/payouts: booked runs, newest first.
type PayoutList struct {
	Payouts []PayoutRecord `json:"payouts"`
}

// PayoutRecord is one booked payout run.
type PayoutRecord struct {
	ID            string    `json:"id"`
	At            time.Time `json:"at"`
	Count         int       `json:"count"`
	Total         int64     `json:"total"`
	ProviderTotal int64     `json:"provider_total"`
	File          bool      `json:"file"` // its pain.001 file is kept
}
