package handoverdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/handover"
)

// ErrNotComplete: a batch whose cards are not all personalized cannot be
// issued.
var ErrNotComplete = errors.New("batch is not complete")

// newEntry starts an entry of type t for the log's organizer, now.
func (l *Log) newEntry(t handover.Type) handover.Entry {
	return handover.Entry{V: handover.Version, Type: t, Org: l.cfg.Org, At: l.Now()}
}

// hqAppend signs e as HQ and appends it.
func (l *Log) hqAppend(ctx context.Context, e handover.Entry) (Appended, error) {
	if err := l.cfg.HQ.SignEntry(&e); err != nil {
		return Appended{}, err
	}
	return l.Append(ctx, e)
}

// EnrolStore records store's public key in the log, signed by HQ. The key
// must be named StoreKeyName(org, store).
func (l *Log) EnrolStore(ctx context.Context, store string, key handover.PublicKey) (Appended, error) {
	e := l.newEntry(handover.TypeKeyEnrolled)
	e.Store, e.Key = store, key.Vkey()
	return l.hqAppend(ctx, e)
}

// IssueBatch records that HQ issued batch no of event with the given card
// numbers, in slot order: the entry holds their count and Merkle root.
func (l *Log) IssueBatch(ctx context.Context, no int64, event string, cards []string) (Appended, error) {
	if len(cards) == 0 {
		return Appended{}, fmt.Errorf("%w: batch %d has no cards", handover.ErrMalformed, no)
	}
	recs := make([][]byte, len(cards))
	for i, c := range cards {
		id, err := handover.ParseCardNumber(c)
		if err != nil || id.Batch() != no {
			return Appended{}, fmt.Errorf("%w: card %q is not a card of batch %d", handover.ErrMalformed, c, no)
		}
		recs[i] = []byte(c)
	}
	e := l.newEntry(handover.TypeBatchIssued)
	e.Batch, e.Event, e.Count = no, event, handover.N(int64(len(cards)))
	e.Root = handover.MerkleRoot(recs).String()
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
	return l.HandOverRun(ctx, no, store, count, "")
}

// HandOverRun records that HQ hands count cards of batch no to store: the
// run of cards from first (a card number) on in slot order, whose cards
// the log then holds at the store, or, with first empty, a count.
func (l *Log) HandOverRun(ctx context.Context, no int64, store string, count int64, first string) (Appended, error) {
	e := l.newEntry(handover.TypeHandedOver)
	e.Batch, e.Store, e.Count, e.Card = no, store, handover.N(count), first
	return l.hqAppend(ctx, e)
}

// RecordCards signs events with s (see SignCardEvents) and appends them.
func (l *Log) RecordCards(ctx context.Context, s *handover.Signer, events ...handover.CardEvent) (Appended, error) {
	es, err := handover.SignCardEvents(s, l.cfg.Org, l.Now(), events)
	if err != nil {
		return Appended{}, err
	}
	return l.Append(ctx, es...)
}
