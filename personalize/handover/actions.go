package handover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
)

// ErrNotComplete: a batch whose cards are not all personalized cannot be
// issued.
var ErrNotComplete = errors.New("batch is not complete")

// newEntry starts an entry of type t for the log's organizer, now.
func (l *Log) newEntry(t Type) Entry {
	return Entry{V: Version, Type: t, Org: l.cfg.Org, At: l.Now()}
}

// hqAppend signs e as HQ and appends it.
func (l *Log) hqAppend(ctx context.Context, e Entry) (Appended, error) {
	if err := l.cfg.HQ.SignEntry(&e); err != nil {
		return Appended{}, err
	}
	return l.Append(ctx, e)
}

// EnrolStore records store's public key in the log, signed by HQ. The key
// must be named StoreKeyName(org, store).
func (l *Log) EnrolStore(ctx context.Context, store string, key PublicKey) (Appended, error) {
	e := l.newEntry(TypeKeyEnrolled)
	e.Store, e.Key = store, key.Vkey()
	return l.hqAppend(ctx, e)
}

// IssueBatch records that HQ issued batch no of event with the given card
// numbers, in slot order: the entry holds their count and Merkle root.
func (l *Log) IssueBatch(ctx context.Context, no int64, event string, cards []string) (Appended, error) {
	if len(cards) == 0 {
		return Appended{}, fmt.Errorf("%w: batch %d has no cards", ErrMalformed, no)
	}
	recs := make([][]byte, len(cards))
	for i, c := range cards {
		id, err := parseCardNumber(c)
		if err != nil || id.Batch() != no {
			return Appended{}, fmt.Errorf("%w: card %q is not a card of batch %d", ErrMalformed, c, no)
		}
		recs[i] = []byte(c)
	}
	e := l.newEntry(TypeBatchIssued)
	e.Batch, e.Event, e.Count = no, event, N(int64(len(cards)))
	e.Root = MerkleRoot(recs).String()
	return l.hqAppend(ctx, e)
}

// BatchSource is what IssueFromStore reads of personalize/batch.
type BatchSource interface {
	Get(ctx context.Context, orgID, no int64) (batch.Batch, error)
	Cards(ctx context.Context, orgID, no int64) ([]batch.Card, error)
}

// IssueFromStore issues batch no as the batch store has it: complete, all
// cards done. Errors wrap ErrNotComplete or the batch store's errors.
func (l *Log) IssueFromStore(ctx context.Context, src BatchSource, no int64) (Appended, error) {
	b, err := src.Get(ctx, l.cfg.Org, no)
	if err != nil {
		return Appended{}, err
	}
	cards, err := src.Cards(ctx, l.cfg.Org, no)
	if err != nil {
		return Appended{}, err
	}
	if b.Status != batch.StatusComplete || len(cards) != b.Count {
		return Appended{}, fmt.Errorf("%w: batch %d has %d of %d cards personalized", ErrNotComplete, no, b.Done, b.Count)
	}
	numbers := make([]string, len(cards))
	for i, c := range cards {
		if c.Status != batch.StatusDone {
			return Appended{}, fmt.Errorf("%w: card %s of batch %d is %s", ErrNotComplete, c.Number, no, c.Status)
		}
		numbers[i] = c.Number
	}
	return l.IssueBatch(ctx, no, b.Event, numbers)
}

// HandOver records that HQ hands count cards of batch no to store.
func (l *Log) HandOver(ctx context.Context, no int64, store string, count int64) (Appended, error) {
	e := l.newEntry(TypeHandedOver)
	e.Batch, e.Store, e.Count = no, store, N(count)
	return l.hqAppend(ctx, e)
}

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

// RecordCards signs events with s (see SignCardEvents) and appends them.
func (l *Log) RecordCards(ctx context.Context, s *Signer, events ...CardEvent) (Appended, error) {
	es, err := SignCardEvents(s, l.cfg.Org, l.Now(), events)
	if err != nil {
		return Appended{}, err
	}
	return l.Append(ctx, es...)
}
