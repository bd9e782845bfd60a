package handover

import (
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/loopcard/loopcard/personalize"
)

// NewReceipt is made and signed at the store, with the store's own key,
// after the store counted the cards of batch no it received: count is
// what it counted, even when it differs from the handover.
func NewReceipt(s *Signer, org, no int64, store string, count int64, at time.Time) (Entry, error) {
	e := Entry{V: Version, Type: TypeReceived, Org: org, At: at.UTC(), Batch: no, Store: store, Count: N(count)}
	if err := s.SignEntry(&e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// CardEvent is one per-card event for SignCardEvents.
type CardEvent struct {
	// Type is TypeCardSold, TypeCardReturned, TypeCardVoided or
	// TypeCardDestroyed.
	Type Type
	Card personalize.CardID
	// Store is where it happens; empty for HQ, for the types HQ may sign
	// (Kind.Signers: void and destroy).
	Store string
	// Note is an optional reason, at most 200 bytes; no personal data.
	Note string
}

// SignCardEvents makes the entries of events, signed by s at time at: one
// event is signed itself; several are left unsigned and followed by one
// seal that s signs. Append the result as it is, in one call.
func SignCardEvents(s *Signer, org int64, at time.Time, events []CardEvent) ([]Entry, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no card events", ErrMalformed)
	}
	at = at.UTC()
	out := make([]Entry, 0, len(events)+1)
	var leaves []tlog.Hash
	for _, ev := range events {
		if !ev.Type.CardEvent() {
			return nil, fmt.Errorf("%w: %s is not a card event", ErrMalformed, ev.Type)
		}
		e := Entry{V: Version, Type: ev.Type, Org: org, At: at, Store: ev.Store, Card: ev.Card.String(), Note: ev.Note, Signer: s.ID()}
		if len(events) == 1 {
			if err := s.SignEntry(&e); err != nil {
				return nil, err
			}
			return []Entry{e}, nil
		}
		b, err := e.Marshal()
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, tlog.RecordHash(b))
		out = append(out, e)
	}
	seal := Entry{V: Version, Type: TypeSeal, Org: org, At: at, Covers: N(int64(len(events))), Hash: SealHash(leaves).String()}
	if err := s.SignEntry(&seal); err != nil {
		return nil, err
	}
	return append(out, seal), nil
}
