package cardpage

import (
	"context"
	"errors"
	"net/url"
	"time"
)

// Backend is what the pages ask of the API. from is the client's address
// (http.Request.RemoteAddr), for the API's rate limits, audit and alerts.
//
// Errors the pages branch on are the sentinels below (wrapped or not); any
// other error is shown as a generic failure and logged.
type Backend interface {
	// Card returns the card's balance and pending loads.
	Card(ctx context.Context, from string, card Secret) (Card, error)
	// History checks the PIN and returns the card's transactions. A card
	// claimed by a profile answers ErrClaimed whatever the PIN.
	History(ctx context.Context, from string, card, pin Secret) (History, error)
	// Refund requests the refund of the card's balance to p.
	Refund(ctx context.Context, from string, card, pin Secret, p Payout) (RefundReceipt, error)
	// Block blocks the card (lost or stolen, reason) with its PIN: it goes
	// on the blocklist the payment terminals check offline.
	Block(ctx context.Context, from string, card, pin Secret, reason string) error
	// ProfileBlock blocks one of the profile's cards.
	ProfileBlock(ctx context.Context, from string, session Secret, cardID, reason string) error
	// Claim links the card to the profile of c (made if new) and logs in.
	Claim(ctx context.Context, from string, card, pin Secret, c Credentials) (Secret, error)
	// Login logs in to the profile of c, in the card's organizer.
	Login(ctx context.Context, from string, card Secret, c Credentials) (Secret, error)
	// Profile returns what the profile may see: its email and its cards.
	Profile(ctx context.Context, from string, session Secret) (Profile, error)
	// ProfileRefund requests the refund of one of the profile's cards.
	ProfileRefund(ctx context.Context, from string, session Secret, cardID string, p Payout) (RefundReceipt, error)
	// Export returns everything kept about the profile, as JSON.
	Export(ctx context.Context, from string, session Secret) ([]byte, error)
	// Erase deletes the profile's personal data.
	Erase(ctx context.Context, from string, session Secret) error
	// Logout ends the login, so that its token no longer works.
	Logout(ctx context.Context, from string, session Secret) error
	// StartTopUp starts an online top-up of amount cents with the payment
	// provider and returns the URL of the provider's page. The card is
	// known to the provider by an opaque checkout id only: the provider
	// sends the cardholder back to ReturnURL(origin, checkout id), which
	// names no card.
	StartTopUp(ctx context.Context, from string, card Secret, amount int64, origin string) (string, error)
	// TopUpCard reports whether the checkout is one of the card's that has
	// not expired: nil if so, ErrUnknownCheckout otherwise.
	TopUpCard(ctx context.Context, checkout string, card Secret) error
	// SetAutoTopUp sets the auto top-up of one of the profile's cards and
	// returns the provider's page where the cardholder saves a payment
	// method (the provider keeps it); the provider sends them back to
	// AutoTopUpReturnURL(origin).
	SetAutoTopUp(ctx context.Context, from string, session Secret, cardID string, a AutoTopUp, origin string) (string, error)
	// StopAutoTopUp turns the auto top-up of one of the profile's cards off.
	StopAutoTopUp(ctx context.Context, from string, session Secret, cardID string) error
	// RedeemVoucher redeems a voucher code for the card and returns its
	// value, a pending load written at the card's next terminal. A code
	// that is unknown, used or expired answers ErrVoucher.
	RedeemVoucher(ctx context.Context, from string, card, code Secret) (int64, error)
}

// Errors a Backend returns for what the pages explain to the cardholder.
var (
	ErrUnknownCard      = errors.New("cardpage: unknown card")
	ErrWrongPIN         = errors.New("cardpage: wrong PIN")
	ErrPINFormat        = errors.New("cardpage: a PIN is 6 digits")
	ErrLocked           = errors.New("cardpage: PIN locked after too many wrong PINs")
	ErrBusy             = errors.New("cardpage: too many requests")
	ErrClaimed          = errors.New("cardpage: card is claimed by a profile")
	ErrNotActive        = errors.New("cardpage: card is not active")
	ErrNothingToRefund  = errors.New("cardpage: nothing to refund")
	ErrRefundExists     = errors.New("cardpage: a refund is already requested")
	ErrClaimNotAdded    = errors.New("cardpage: the card is not in a profile of this email and password")
	ErrClaimedByOther   = errors.New("cardpage: card is claimed by another profile")
	ErrInvalid          = errors.New("cardpage: invalid input")
	ErrLoginFailed      = errors.New("cardpage: wrong email or password")
	ErrSessionEnded     = errors.New("cardpage: login ended")
	ErrTopUpUnavailable = errors.New("cardpage: online top-up is not available")
	ErrUnknownCheckout  = errors.New("cardpage: unknown or expired checkout")
	ErrVoucher          = errors.New("cardpage: voucher code unknown, used or expired")
)

// ReturnURL is where the payment provider sends the cardholder back after
// the checkout of id (origin is the pages' "https://host"): the checkout
// id stands for the card, whose token never goes to the provider. The
// provider changes "topup=done" to "topup=cancelled" for a cancelled
// payment.
func ReturnURL(origin, checkout string) string {
	return origin + "/topup/" + url.PathEscape(checkout) + "?topup=done"
}

// AutoTopUpReturnURL is where the provider sends the cardholder back after
// saving a payment method (origin is the pages' "https://host"); it
// changes "autotopup=saved" to "autotopup=cancelled" when they cancel.
func AutoTopUpReturnURL(origin string) string { return origin + "/account?autotopup=saved" }

// AutoTopUp is a claimed card's auto top-up: reload Amount when the
// balance is below Threshold, at most DailyLimit a day (cents). Status is
// setup (waiting for the provider), active or disabled (Reason).
type AutoTopUp struct {
	Amount, Threshold, DailyLimit int64
	Status, Reason                string
	Charges                       []AutoTopUpCharge
}

// AutoTopUpCharge is one charge of an auto top-up: Status triggered,
// processing, succeeded, failed or requires_action.
type AutoTopUpCharge struct {
	At             time.Time
	Amount         int64
	Status, Reason string
}

// Card is a card's balance as the ledger knows it. Amounts are cents.
type Card struct {
	ID      string // the card's UID in hex, printed on it
	Event   string
	Status  string // active, blocked, ...
	Balance int64
	// NonRefundable is the part of Balance that is not refunded
	// (vouchers, comps): it is spent first.
	NonRefundable int64
	// Pending is paid online and not yet written to the card (it is at the
	// next terminal); PendingCount is how many top-ups that is.
	Pending      int64
	PendingCount int
	// Claimed: the card belongs to a profile, whose login shows its history.
	Claimed bool
	// Refund is the state of the card's refund, if one was requested:
	// pending (the amount is fixed at payout), paid (RefundAmount) or
	// nothing_due.
	Refund       string
	RefundAmount int64
}

// Entry is one transaction: a payment (Amount < 0) or a top-up (Amount > 0).
type Entry struct {
	At     time.Time
	TopUp  bool
	Where  string // merchant of a payment; store or channel of a top-up
	Amount int64
	Status string
}

// History is a card with its transactions, newest first.
type History struct {
	Card
	Entries []Entry
	// AutoTopUp is the card's auto top-up, on a profile's card that has
	// one.
	AutoTopUp *AutoTopUp
}

// Payout is where a refund goes. It is personal data.
type Payout struct {
	Name string
	IBAN string // normalised: upper case, no spaces
}

// RefundReceipt acknowledges a refund request.
type RefundReceipt struct {
	ID     string
	Card   string // hex id, where known
	Amount int64
	Status string // requested, paid, cancelled, ...
}

// Credentials log in to a profile.
type Credentials struct {
	Email    string
	Password Secret
	// Consent is set (by Claim only) when the cardholder agreed to keep
	// the email address and link it to the card, under the privacy notice
	// of version NoticeVersion.
	Consent bool
}

// NoticeVersion names the privacy notice the pages show; a claim records
// the consent under it. Change it whenever the notice's text changes.
const NoticeVersion = "2026-11"

// Profile is a logged-in cardholder's view.
type Profile struct {
	Email   string
	Since   time.Time
	Cards   []History
	Refunds []RefundReceipt
}
