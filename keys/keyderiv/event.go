package keyderiv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EventDebitDomain opens every event debit key input (EventDebitInput): it
// separates the derivation from AN10922 diversification with the same base
// key, whose input starts with 0x01, and from the earlier "event" || id.
const EventDebitDomain = "loopcard/event-debit/v2"

// MaxEventIDLen is the longest event id EventDebitInput takes, in bytes.
const MaxEventIDLen = 255

// ErrEventDebitInput is returned for an organizer or event id that cannot
// make an event debit key input.
var ErrEventDebitInput = errors.New("bad event debit key input")

// EventDebitInput is the message the HSM MACs with the app-debit base key
// to derive the debit key of event of organizer org:
//
//	"loopcard/event-debit/v2" || 0x00 || uint64be(org) || uint8(len(event)) || event
//
// The organizer is bound in, so two organizers' events of one id get
// different keys, and the fixed-width organizer and the length prefix make
// the encoding unambiguous. org must be positive and event 1 to
// MaxEventIDLen bytes. Errors wrap ErrEventDebitInput.
func EventDebitInput(org int64, event string) ([]byte, error) {
	if org <= 0 {
		return nil, fmt.Errorf("%w: organizer %d: organizer ids are positive", ErrEventDebitInput, org)
	}
	if len(event) == 0 || len(event) > MaxEventIDLen {
		return nil, fmt.Errorf("%w: an event id is 1 to %d bytes, got %d", ErrEventDebitInput, MaxEventIDLen, len(event))
	}
	b := make([]byte, 0, len(EventDebitDomain)+1+8+1+len(event))
	b = append(b, EventDebitDomain...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(org))
	b = append(b, byte(len(event)))
	return append(b, event...), nil
}
