// Package inproc is a reader.Reader over virtual cards in the same process,
// for tests and demos without pcscd: cards are presented one after another
// from a queue, and taking a card away (now, or after a number of exchanges)
// is a tear that powers it off.
package inproc

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/loopcard/loopcard/personalize/reader"
)

// Card is a virtual card, as personalize/vcard provides.
type Card interface {
	Transmit(apdu []byte) []byte
	PowerOn()
	PowerOff()
	UID() []byte
}

// Options configures a Reader.
type Options struct {
	// Name is the reader's name; empty means "inproc".
	Name string
	// HolderLeaves makes WaitForRemoval take the card away itself, as a
	// cardholder who removes the card when the exchange is over. Without
	// it a card leaves only through Remove or TearAfter.
	HolderLeaves bool
}

// Reader is an in-process reader slot. It is safe for concurrent use.
type Reader struct {
	name         string
	holderLeaves bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	queue   []Card
	current *inField // nil: the field is empty
	tearIn  int      // exchanges before a tear; -1: none planned
	closed  bool
}

var _ reader.Reader = (*Reader)(nil)

// inField is the card in the field and its presence.
type inField struct {
	card    Card
	removed chan struct{}
}

// New returns an empty reader.
func New(opts Options) *Reader {
	if opts.Name == "" {
		opts.Name = "inproc"
	}
	return &Reader{name: opts.Name, holderLeaves: opts.HolderLeaves, changed: make(chan struct{}), tearIn: -1}
}

// Name returns the reader's name.
func (r *Reader) Name() string { return r.name }

// Close closes the reader: waits end with reader.ErrClosed and the card in
// the field leaves it.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.removeLocked()
	r.queue = nil
	r.notifyLocked()
	return nil
}

// Present queues cards to be put into the field one after another: each
// enters the field when the one before has left it.
func (r *Reader) Present(cards ...Card) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, cards...)
	r.advanceLocked()
	r.notifyLocked()
}

// Remove takes the card in the field away, a tear if an exchange was under
// way, and lets the next queued card in. It does nothing on an empty field.
func (r *Reader) Remove() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked()
	r.advanceLocked()
	r.notifyLocked()
}

// TearAfter plans a tear: the card in the field (or the next one to enter)
// answers n more APDUs, and the one after that is lost as the card leaves
// the field without answering.
func (r *Reader) TearAfter(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tearIn = n
}

func (r *Reader) removeLocked() {
	if r.current == nil {
		return
	}
	r.current.card.PowerOff()
	close(r.current.removed)
	r.current = nil
}

func (r *Reader) advanceLocked() {
	if r.current != nil || len(r.queue) == 0 || r.closed {
		return
	}
	c := r.queue[0]
	r.queue = r.queue[1:]
	c.PowerOn()
	r.current = &inField{card: c, removed: make(chan struct{})}
}

func (r *Reader) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// WaitForCard returns the card in the field, waiting for one to be
// presented.
func (r *Reader) WaitForCard(ctx context.Context) (reader.Card, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("inproc: wait for a card: %w", reader.ErrClosed)
		}
		if f := r.current; f != nil {
			r.mu.Unlock()
			return &card{r: r, f: f}, nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// card is a session with the card in the field.
type card struct {
	r *Reader
	f *inField

	mu     sync.Mutex
	closed bool
}

func (c *card) Transmit(apdu []byte) ([]byte, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("inproc: transmit: %w", reader.ErrClosed)
	}
	r := c.r
	r.mu.Lock()
	if r.current != c.f {
		r.mu.Unlock()
		return nil, fmt.Errorf("inproc: transmit: %w", reader.ErrRemoved)
	}
	if r.tearIn == 0 {
		r.tearIn = -1
		r.removeLocked()
		r.advanceLocked()
		r.notifyLocked()
		r.mu.Unlock()
		return nil, fmt.Errorf("inproc: transmit: %w", reader.ErrRemoved)
	}
	if r.tearIn > 0 {
		r.tearIn--
	}
	// The reader lock is held through the exchange so that a removal
	// cannot overtake it: the card answers or leaves, not both.
	resp := c.f.card.Transmit(apdu)
	r.mu.Unlock()
	return bytes.Clone(resp), nil
}

// UID returns the card's UID as a PC/SC reader would read it.
func (c *card) UID() ([]byte, error) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != c.f {
		return nil, fmt.Errorf("inproc: get UID: %w", reader.ErrRemoved)
	}
	return bytes.Clone(c.f.card.UID()), nil
}

func (c *card) WaitForRemoval(ctx context.Context) error {
	if c.r.holderLeaves {
		c.r.mu.Lock()
		if c.r.current == c.f {
			c.r.removeLocked()
			c.r.advanceLocked()
			c.r.notifyLocked()
		}
		c.r.mu.Unlock()
	}
	select {
	case <-c.f.removed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the session; the card stays in the field.
func (c *card) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}
