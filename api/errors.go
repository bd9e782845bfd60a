package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/personalize/batch"
)

// Error is an error with the status and the short public message the
// client sees; the cause stays in logs.
type Error struct {
	Status int
	Public string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Public
	}
	return e.Public + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func apiError(status int, public string, cause error) *Error {
	return &Error{Status: status, Public: public, Err: cause}
}

// Errors every handler may return as they are.
var (
	errNotFound     = apiError(http.StatusNotFound, "not found", nil)
	errUnauthorized = apiError(http.StatusUnauthorized, "authentication required", nil)
	errForbidden    = apiError(http.StatusForbidden, "forbidden", nil)
	errTooLarge     = apiError(http.StatusRequestEntityTooLarge, "request body too large", nil)
	errRateLimited  = apiError(http.StatusTooManyRequests, "too many requests", nil)
	errCardLocked   = apiError(http.StatusTooManyRequests, "too many wrong PINs: card locked, try later", nil)
	errWrongPIN     = apiError(http.StatusUnauthorized, "wrong PIN", nil)
	errReplay       = apiError(http.StatusUnauthorized, "request replayed", nil)
	errSessionKey   = apiError(http.StatusUnauthorized, "session key expired, revoked or unknown", nil)
	errBadSignature = apiError(http.StatusUnauthorized, "bad request signature", nil)
	// errFailedCredential refuses a token or key id that failed in the
	// last minutes, without looking it up again.
	errFailedCredential = apiError(http.StatusUnauthorized, "invalid or expired credentials", nil)
	errMediaType        = apiError(http.StatusUnsupportedMediaType, "body must be application/json", nil)
	// errClaimed refuses the QR token and PIN where a profile claimed the
	// card: its history and refund are the profile's.
	errClaimed = apiError(http.StatusForbidden, "card is claimed: log in to its profile", nil)
)

func badRequest(public string, cause error) *Error {
	return apiError(http.StatusBadRequest, public, cause)
}

// publicError is the one mapping from internal errors to what a client
// sees.
func publicError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if he, ok := handoverError(err); ok {
		return he
	}
	// A refused field names itself and never its value.
	var ie *input.Error
	if errors.As(err, &ie) {
		return apiError(http.StatusBadRequest, ie.Error(), err)
	}
	if ledger.Unavailable(err) {
		e := *errDatabaseUnavailable
		e.Err = err
		return &e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return apiError(http.StatusServiceUnavailable, "request timed out", err)
	case errors.Is(err, ledger.ErrNotFound), errors.Is(err, batch.ErrNotFound):
		return apiError(http.StatusNotFound, "not found", err)
	case errors.Is(err, ledger.ErrInvalid), errors.Is(err, batch.ErrInvalid):
		return apiError(http.StatusBadRequest, "invalid request", err)
	case errors.Is(err, ledger.ErrConflict), errors.Is(err, ledger.ErrExists):
		return apiError(http.StatusConflict, "conflicts with an earlier request", err)
	case errors.Is(err, ledger.ErrNotReviewed):
		return apiError(http.StatusConflict, "card is blocked: HQ reviews its alert first", err)
	case errors.Is(err, ledger.ErrCardBlocked):
		return apiError(http.StatusConflict, "card is blocked", err)
	case errors.Is(err, ledger.ErrNotInStock):
		return apiError(http.StatusConflict, "the store does not hold this card by the custody log", err)
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return apiError(http.StatusConflict, "insufficient funds", err)
	case errors.Is(err, ledger.ErrRefundWindow):
		return apiError(http.StatusConflict, "the refund window is closed", err)
	case errors.Is(err, ledger.ErrNothingToPay):
		return apiError(http.StatusConflict, "nothing to refund", err)
	case errors.Is(err, ledger.ErrDayClosed):
		return apiError(http.StatusConflict, "this day is already closed", err)
	case errors.Is(err, ledger.ErrEnrolment):
		return apiError(http.StatusUnauthorized, "enrolment refused", err)
	}
	return apiError(http.StatusInternalServerError, "internal error", err)
}
