package apitype

import "time"

// CardStatus is a card's balance as the ledger knows it.
type CardStatus struct {
	Card    string `json:"card"`
	Event   string `json:"event"`
	Status  string `json:"status"`
	Balance int64  `json:"balance"` // on the card, as confirmed by its writers
	// Pending is credit paid (cash at a store, or online) that is not on
	// the card yet: it reaches the card when a store or terminal writes it.
	Pending int64 `json:"pending"`
	// NonRefundable is the part of Balance that is not refundable
	// (vouchers, comps, welcome credit): spent first, never refunded.
	NonRefundable int64 `json:"non_refundable"`
	// Refund is the card's refund, once one was requested.
	Refund *RefundStatus `json:"refund,omitempty"`
}

// RefundStatus is where a card's refund stands: pending until it is paid
// out, paid, or nothing_due when offline payments uploaded before the
// payout used up the credit. Amount is fixed at payout (absent while
// pending).
type RefundStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Amount *int64 `json:"amount,omitempty"`
}

// Payment is a debit of the card at a terminal.
type Payment struct {
	ID       string    `json:"id"`
	At       time.Time `json:"at"`
	Merchant string    `json:"merchant"`
	Amount   int64     `json:"amount"`
	CardSeq  int64     `json:"card_seq"`
	After    int64     `json:"balance_after"`
	Status   string    `json:"status"`
}

// TopUp is a credit of the card.
type TopUp struct {
	ID      string    `json:"id"`
	At      time.Time `json:"at"`
	Channel string    `json:"channel"`
	Store   string    `json:"store,omitempty"`
	Amount  int64     `json:"amount"`
	Status  string    `json:"status"`
}

// History is a card's transactions, newest first (at most 500 of each).
type History struct {
	CardStatus
	Payments []Payment `json:"payments"`
	TopUps   []TopUp   `json:"topups"`
	// AutoTopUp is the card's auto top-up rule and its charges, for the
	// profile that claimed it (none elsewhere).
	AutoTopUp *AutoTopUp `json:"autotopup,omitempty"`
}

// AutoTopUp is a card's auto top-up: reload Amount when the balance is
// below Threshold, at most DailyLimit a day. Status is setup (waiting for
// the provider to save the payment method), active or disabled (Reason).
type AutoTopUp struct {
	Amount     int64             `json:"amount"`
	Threshold  int64             `json:"threshold"`
	DailyLimit int64             `json:"daily_limit"`
	Status     string            `json:"status"`
	Reason     string            `json:"reason,omitempty"`
	Charges    []AutoTopUpCharge `json:"charges"`
}

// AutoTopUpCharge is one charge of an auto top-up, newest first (at most
// 50): Status triggered, processing, succeeded, failed or
// requires_action (Reason, as the provider said).
type AutoTopUpCharge struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Amount int64     `json:"amount"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
}

// AutoTopUpRequest sets a claimed card's auto top-up; the cardholder then
// saves a payment method on the provider's page (AutoTopUpResponse.URL),
// which sends them back to ReturnURL.
type AutoTopUpRequest struct {
	Amount     int64  `json:"amount"`
	Threshold  int64  `json:"threshold"`
	DailyLimit int64  `json:"daily_limit"`
	ReturnURL  string `json:"return_url"`
}

// AutoTopUpResponse is where the cardholder saves the payment method.
type AutoTopUpResponse struct {
	URL    string `json:"url"`
	Status string `json:"status"`
}

// RefundRequest is the body of a refund request: where to pay the
// remaining balance. It is personal data, kept sealed.
type RefundRequest struct {
	Name string `json:"name"`
	IBAN string `json:"iban"`
}

// RefundResponse acknowledges a refund request. The amount is fixed at
// payout, after the event's terminals have sent their payments: Status is
// pending and Amount 0 until then; Credit is what the card holds now,
// what the refund pays unless payments taken offline arrive first.
type RefundResponse struct {
	ID     string `json:"id"`
	Card   string `json:"card"`
	Amount int64  `json:"amount"`
	Credit int64  `json:"credit"`
	Status string `json:"status"`
}

// ClaimRequest is the body of POST /v1/card/claim.
type ClaimRequest struct {
	Email    string  `json:"email"`
	Password Secret  `json:"password"`
	Consent  Consent `json:"consent"`
}

// ClaimResponse is the answer (202) of POST /v1/card/claim. It is the same
// whether the email had a profile or not and whether the password was
// right: the client logs in next (POST /v1/profile/login), and the card
// is in the profile only if the claim linked it.
type ClaimResponse struct {
	Card string `json:"card"`
	Next string `json:"next"`
}

// ConsentProfile is the purpose a claim needs consent to: keeping the
// cardholder's email address (sealed) and linking it to the card. It is
// the only optional personal data the API keeps; without this consent a
// claim is refused and nothing is kept.
const ConsentProfile = "profile"

// Consent is what a cardholder agreed to, as recorded at a claim.
type Consent struct {
	// Purposes agreed to; ConsentProfile is required.
	Purposes []string `json:"purposes"`
	// Notice is the version of the privacy notice that was shown.
	Notice string `json:"notice"`
}

// ExportedConsent is a recorded consent in a profile's export.
type ExportedConsent struct {
	Card    string    `json:"card"`
	Purpose string    `json:"purpose"`
	Notice  string    `json:"notice"`
	GivenAt time.Time `json:"given_at"`
}

// LoginResponse carries a profile's bearer token.
type LoginResponse struct {
	Profile   string    `json:"profile"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// LoginRequest is the body of POST /v1/profile/login.
type LoginRequest struct {
	Org      int64  `json:"org"`
	Email    string `json:"email"`
	Password Secret `json:"password"`
}

// LogoutResponse acknowledges a logout.
type LogoutResponse struct {
	LoggedOut bool `json:"logged_out"`
}

// ProfileExport is everything the API keeps about a profile (GDPR
// article 15 and 20).
type ProfileExport struct {
	Profile   string            `json:"profile"`
	Email     string            `json:"email"`
	CreatedAt time.Time         `json:"created_at"`
	Cards     []History         `json:"cards"`
	Refunds   []ExportedRefund  `json:"refund_requests"`
	Consents  []ExportedConsent `json:"consents"`
}

// ExportedRefund is a refund request with its payout details.
type ExportedRefund struct {
	ID     string        `json:"id"`
	Card   string        `json:"card"`
	Amount int64         `json:"amount"`
	Status string        `json:"status"`
	Payout RefundRequest `json:"payout"`
}
