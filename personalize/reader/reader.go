// Package reader is what the personalization station and the terminals use to
// talk to a card in the field: wait for a card, exchange APDUs with it, and
// notice when it leaves. Implementations live in subpackages: pcsc for PC/SC
// readers (real ones, or the vpcd virtual slot) and inproc for a virtual card
// in the same process.
package reader

import (
	"context"
	"errors"
)

// Reader is one reader slot.
type Reader interface {
	// WaitForCard blocks until a card is in the field and returns it,
	// connected and powered. A card already in the field is returned at
	// once. It returns ctx.Err() when ctx is done first.
	WaitForCard(ctx context.Context) (Card, error)
	// Name is the reader's name, for logs.
	Name() string
	// Close releases the reader; a WaitForCard under way returns an
	// error wrapping ErrClosed.
	Close() error
}

// Card is a card in the field of a Reader.
type Card interface {
	// Transmit sends a whole command APDU and returns the whole response,
	// status word included. It returns an error wrapping ErrRemoved when
	// the card left the field (a tear).
	Transmit(apdu []byte) ([]byte, error)
	// UID returns the card's anticollision UID (on PC/SC readers through
	// the pseudo-APDU FF CA 00 00 00).
	UID() ([]byte, error)
	// WaitForRemoval blocks until the card has left the field, or returns
	// ctx.Err() when ctx is done first.
	WaitForRemoval(ctx context.Context) error
	// Close ends the session with the card; the card stays in the field.
	Close() error
}

var (
	// ErrRemoved means the card left the field, maybe in the middle of an
	// exchange: whatever the card did not commit is lost.
	ErrRemoved = errors.New("reader: card removed")
	// ErrNotFound means no reader matched the name or index asked for.
	ErrNotFound = errors.New("reader: no such reader")
	// ErrClosed means the reader or card was closed.
	ErrClosed = errors.New("reader: closed")
)
