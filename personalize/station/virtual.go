package station

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/loopcard/loopcard/personalize/reader"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// BlankCards is a reader that presents a new blank virtual DESFire card
// (factory keys, random UID) every time the station asks for one: the
// station's --reader virtual. With Dir the cards last: each keeps its
// content in a vcard state file there, which `loopcard vcard --state FILE`
// puts into a vpcd slot to be tapped; without Dir they live in memory only.
type BlankCards struct {
	// Dir is an existing directory for the cards' state files, named
	// UID.json (14 upper-case hex digits); empty keeps the cards in memory.
	Dir string

	mu     sync.Mutex
	n      int
	files  []string
	closed bool
}

var _ reader.Reader = (*BlankCards)(nil)

// Name implements reader.Reader.
func (b *BlankCards) Name() string { return "virtual" }

// Presented is the number of cards presented so far.
func (b *BlankCards) Presented() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// WaitForCard implements reader.Reader: it returns a fresh blank card.
func (b *BlankCards) WaitForCard(ctx context.Context) (reader.Card, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, reader.ErrClosed
	}
	c, err := vcard.New(vcard.Options{})
	if err != nil {
		return nil, fmt.Errorf("station: virtual card: %w", err)
	}
	if b.Dir != "" {
		path := filepath.Join(b.Dir, strings.ToUpper(hex.EncodeToString(c.UID()))+".json")
		if c, err = vcard.New(vcard.Options{UID: c.UID(), StatePath: path}); err != nil {
			return nil, fmt.Errorf("station: virtual card: %w", err)
		}
		b.files = append(b.files, path)
	}
	b.n++
	return &VirtualCard{Card: c}, nil
}

// Files are the state files of the cards presented so far, in order.
func (b *BlankCards) Files() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.files...)
}

// Close implements reader.Reader.
func (b *BlankCards) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// VirtualCard is a vcard.Card in the field of an in-process reader. It
// leaves the field as soon as the station is done with it.
type VirtualCard struct {
	Card *vcard.Card
}

var _ reader.Card = (*VirtualCard)(nil)

// Transmit implements reader.Card.
func (v *VirtualCard) Transmit(apdu []byte) ([]byte, error) { return v.Card.Transmit(apdu), nil }

// UID implements reader.Card.
func (v *VirtualCard) UID() ([]byte, error) { return v.Card.UID(), nil }

// WaitForRemoval implements reader.Card: an in-process card is taken away
// at once.
func (v *VirtualCard) WaitForRemoval(context.Context) error { return nil }

// Close implements reader.Card.
func (v *VirtualCard) Close() error { return nil }
