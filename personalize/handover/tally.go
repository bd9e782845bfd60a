package handover

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/loopcard/loopcard/personalize"
)

// Errors of Tally.
var (
	// ErrCount: an entry moves more cards than are where it says.
	ErrCount = errors.New("counts do not add up")
	// ErrState: a card or batch event that its history does not allow,
	// such as selling a card twice or receiving without a handover.
	ErrState = errors.New("event not allowed in this state")
)

// cardState is where a card is after its per-card events.
type cardState uint8

const (
	inStock cardState = iota // at HQ or a store, counted by location
	sold
	returned
	voided
	destroyed
)

func (s cardState) String() string {
	return [...]string{"in stock", "sold", "returned", "voided", "destroyed"}[s]
}

// BatchCounts says where the cards of one batch are.
type BatchCounts struct {
	Batch  int64 `json:"batch"`
	Issued int64 `json:"issued"`
	AtHQ   int64 `json:"at_hq"`
	// InTransit were handed over and not yet received.
	InTransit int64            `json:"in_transit"`
	AtStores  map[string]int64 `json:"at_stores"`
	Sold      int64            `json:"sold"`
	Returned  int64            `json:"returned"`
	Voided    int64            `json:"voided"`
	Destroyed int64            `json:"destroyed"`
	// Missing is handed over minus counted on receipt, over all receipts
	// (negative when stores counted more than they were given).
	Missing int64 `json:"missing"`
}

// Accounted is the sum of every place a card can be; it equals Issued.
func (b BatchCounts) Accounted() int64 {
	n := b.AtHQ + b.InTransit + b.Sold + b.Returned + b.Voided + b.Destroyed + b.Missing
	for _, c := range b.AtStores {
		n += c
	}
	return n
}

// Handover is a handover and, once there is one, its receipt.
type Handover struct {
	Batch int64  `json:"batch"`
	Store string `json:"store"`
	// Index is the handover entry; Count the cards HQ handed over.
	Index int64 `json:"index"`
	Count int64 `json:"count"`
	// Received is the receipt's entry index (-1: open) and Counted what the
	// store counted.
	Received int64 `json:"received_index"`
	Counted  int64 `json:"counted"`
	// First, for a handover of a run of cards, is its first card: the
	// cards First to First+Count-1 are the store's once received, and no
	// other store's or HQ's to sell, void or destroy. Empty: a count.
	First string `json:"first,omitempty"`
}

// Tally follows custody through a log's entries in order: batch counts per
// place, handovers and their receipts, and each card's state. It checks
// the counts, not signatures (see Checker).
type Tally struct {
	batches   map[int64]*BatchCounts
	cards     map[uint64]cardState
	handovers []*Handover
	open      map[string][]*Handover // batch/store -> open handovers, oldest first
	// placed holds the cards of handovers of a run of cards (Handover.First),
	// each with its handover: where the card is, by the log.
	placed map[uint64]*Handover
	// counted is, per batch/store, the cards received by count (handovers
	// without First) and not yet moved by a card event: a card that no run
	// placed is taken from these.
	counted map[string]int64
}

// NewTally returns an empty tally.
func NewTally() *Tally {
	return &Tally{batches: map[int64]*BatchCounts{}, cards: map[uint64]cardState{}, open: map[string][]*Handover{},
		placed: map[uint64]*Handover{}, counted: map[string]int64{}}
}

// Place reports where the log says card is, when a handover of a run of
// cards took it: the handover (whose Store has it once Received >= 0).
func (t *Tally) Place(card personalize.CardID) (Handover, bool) {
	h := t.placed[uint64(card)]
	if h == nil {
		return Handover{}, false
	}
	return *h, true
}

// Add applies the entry at index i. Errors are *EntryError wrapping
// ErrCount or ErrState.
func (t *Tally) Add(i int64, e Entry) error {
	fail := func(err error, format string, args ...any) error {
		return &EntryError{Index: i, Err: fmt.Errorf("%w: %s: %s", err, e.Type, fmt.Sprintf(format, args...))}
	}
	batchOf := func(n int64) (*BatchCounts, error) {
		b := t.batches[n]
		if b == nil {
			return nil, fail(ErrState, "batch %d was not issued", n)
		}
		return b, nil
	}
	switch e.Type {
	case TypeKeyEnrolled, TypeSeal:
		return nil
	case TypeBatchIssued:
		if t.batches[e.Batch] != nil {
			return fail(ErrState, "batch %d issued twice", e.Batch)
		}
		t.batches[e.Batch] = &BatchCounts{Batch: e.Batch, Issued: *e.Count, AtHQ: *e.Count, AtStores: map[string]int64{}}
	case TypeHandedOver:
		b, err := batchOf(e.Batch)
		if err != nil {
			return err
		}
		if *e.Count > b.AtHQ {
			return fail(ErrCount, "%d cards of batch %d handed to %s, HQ holds %d", *e.Count, e.Batch, e.Store, b.AtHQ)
		}
		h := &Handover{Batch: e.Batch, Store: e.Store, Index: i, Count: *e.Count, Received: -1, First: e.Card}
		if e.Card != "" {
			if err := t.placeRun(h, b, fail); err != nil {
				return err
			}
		}
		b.AtHQ -= *e.Count
		b.InTransit += *e.Count
		t.handovers = append(t.handovers, h)
		k := fmt.Sprintf("%d/%s", e.Batch, e.Store)
		t.open[k] = append(t.open[k], h)
	case TypeReceived:
		b, err := batchOf(e.Batch)
		if err != nil {
			return err
		}
		k := fmt.Sprintf("%d/%s", e.Batch, e.Store)
		if len(t.open[k]) == 0 {
			return fail(ErrState, "store %s received batch %d without an open handover", e.Store, e.Batch)
		}
		h := t.open[k][0]
		t.open[k] = t.open[k][1:]
		h.Received, h.Counted = i, *e.Count
		b.InTransit -= h.Count
		b.Missing += h.Count - *e.Count
		b.AtStores[e.Store] += *e.Count
		if h.First == "" {
			t.counted[k] += *e.Count
		}
	default:
		k := kindOf(e.Type)
		if k == nil || k.move == nil {
			return fail(ErrState, "unknown entry type")
		}
		return t.moveCard(e, k.move, fail, batchOf)
	}
	return nil
}

// moveCard applies a card event by its rule (Kind.move): the card must be
// in one of the rule's from states; a card in stock is taken from where
// the entry says it is.
func (t *Tally) moveCard(e Entry, m *cardMove, fail func(error, string, ...any) error, batchOf func(int64) (*BatchCounts, error)) error {
	id, err := parseCardNumber(e.Card)
	if err != nil {
		return fail(ErrState, "%v", err)
	}
	b, err := batchOf(id.Batch())
	if err != nil {
		return err
	}
	if int64(id.Slot()) > b.Issued {
		return fail(ErrState, "card %s is not in batch %d of %d cards", e.Card, b.Batch, b.Issued)
	}
	st := t.cards[uint64(id)]
	if !slices.Contains(m.from, st) {
		return fail(ErrState, "card %s is %s, not %s", e.Card, st, statesText(m.from))
	}
	if h := t.placed[uint64(id)]; h != nil && st == inStock {
		// A card of a run handed over: where the log says it is.
		switch {
		case h.Received < 0:
			return fail(ErrState, "card %s is on its way to store %s (handover %d not received)", e.Card, h.Store, h.Index)
		case e.Store != h.Store:
			return fail(ErrState, "card %s is at store %s (handover %d)", e.Card, h.Store, h.Index)
		case b.AtStores[e.Store] < 1:
			return fail(ErrCount, "card %s: store %s holds no card of batch %d", e.Card, e.Store, b.Batch)
		}
		b.AtStores[e.Store]--
	} else if st == inStock {
		// Take the card from where the entry says it is.
		if e.Store == "" {
			if b.AtHQ < 1 {
				return fail(ErrCount, "card %s: HQ holds no card of batch %d", e.Card, b.Batch)
			}
			b.AtHQ--
		} else {
			k := fmt.Sprintf("%d/%s", b.Batch, e.Store)
			if t.counted[k] < 1 || b.AtStores[e.Store] < 1 {
				return fail(ErrCount, "card %s: store %s holds no card of batch %d", e.Card, e.Store, b.Batch)
			}
			t.counted[k]--
			b.AtStores[e.Store]--
		}
	} else {
		*b.final(st)--
	}
	*b.final(m.to)++
	t.cards[uint64(id)] = m.to
	if b.Accounted() != b.Issued {
		return fail(ErrCount, "batch %d accounts for %d of %d cards", b.Batch, b.Accounted(), b.Issued)
	}
	return nil
}

// placeRun places the run of cards of handover h (h.First, h.Count cards
// in slot order): each must be in the batch, in stock and in no run
// handed over before.
func (t *Tally) placeRun(h *Handover, b *BatchCounts, fail func(error, string, ...any) error) error {
	first, err := parseCardNumber(h.First)
	if err != nil {
		return fail(ErrState, "%v", err)
	}
	if first.Batch() != b.Batch || int64(first.Slot())+h.Count-1 > b.Issued {
		return fail(ErrState, "cards %s and the %d after it are not all in batch %d of %d cards", h.First, h.Count-1, b.Batch, b.Issued)
	}
	for n := range h.Count {
		id := uint64(first) + uint64(n)
		if t.cards[id] != inStock {
			return fail(ErrState, "card %s is %s", personalize.CardID(id), t.cards[id])
		}
		if o := t.placed[id]; o != nil {
			return fail(ErrState, "card %s was handed to store %s before (entry %d)", personalize.CardID(id), o.Store, o.Index)
		}
	}
	for n := range h.Count {
		t.placed[uint64(first)+uint64(n)] = h
	}
	return nil
}

// final returns the count of a final state (not in stock).
func (b *BatchCounts) final(s cardState) *int64 {
	switch s {
	case sold:
		return &b.Sold
	case returned:
		return &b.Returned
	case voided:
		return &b.Voided
	case destroyed:
		return &b.Destroyed
	}
	panic("handover: no count for a card " + s.String())
}

// statesText lists states for a message: "in stock", "sold or returned".
func statesText(ss []cardState) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.String()
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Batches returns the counts of every batch, by batch number.
func (t *Tally) Batches() []BatchCounts {
	out := make([]BatchCounts, 0, len(t.batches))
	for _, b := range t.batches {
		c := *b
		c.AtStores = make(map[string]int64, len(b.AtStores))
		for s, n := range b.AtStores {
			c.AtStores[s] = n
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Batch < out[j].Batch })
	return out
}

// Handovers returns every handover in log order with its receipt, if any.
func (t *Tally) Handovers() []Handover {
	out := make([]Handover, len(t.handovers))
	for i, h := range t.handovers {
		out[i] = *h
	}
	return out
}
