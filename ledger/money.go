package ledger

import "errors"

// Errors of the money flows.
var (
	ErrRefundWindow = errors.New("ledger: refund window closed")
	ErrWindowOpen   = errors.New("ledger: refund window still open")
	ErrNothingToPay = errors.New("ledger: nothing to refund")
	ErrDayClosed    = errors.New("ledger: store day already closed")
	// ErrWriteMismatch: a load's confirmation has balances that do not
	// differ by the load's amount (it also matches ErrInvalid).
	ErrWriteMismatch = errors.New("ledger: the card write does not add the load's amount")
)

// The money flows live one topic a file: cardwrite.go (card writes and
// loads), storecash.go (cash at stores), payments.go (payments from
// providers), refunds.go (refunds and payouts), storeday.go (store days).
