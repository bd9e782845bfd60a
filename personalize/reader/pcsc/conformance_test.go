package pcsc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
	"github.com/loopcard/loopcard/personalize/vcard"
	"github.com/loopcard/loopcard/personalize/vcard/conformance"
	"github.com/loopcard/loopcard/personalize/vpcd"
)

// slot is what the vpcd bridge holds: the virtual card currently behind
// the reader, which Reset swaps for a fresh one.
type slot struct {
	mu   sync.Mutex
	card *vcard.Card
	offs int
}

func (s *slot) get() *vcard.Card {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.card
}

func (s *slot) set(c *vcard.Card) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.card = c
}

func (s *slot) powerOffs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.offs
}

func (s *slot) ATR() []byte                 { return s.get().ATR() }
func (s *slot) UID() []byte                 { return s.get().UID() }
func (s *slot) Transmit(apdu []byte) []byte { return s.get().Transmit(apdu) }
func (s *slot) PowerOn()                    { s.get().PowerOn() }
func (s *slot) PowerOff() {
	s.mu.Lock()
	s.offs++
	s.mu.Unlock()
	s.get().PowerOff()
}

// viaPCSC reaches the virtual card through libpcsclite, the private pcscd,
// the vpcd driver and the vpcd bridge: the whole path a station's card takes.
type viaPCSC struct {
	env  *pcsctest.Env
	r    *pcsc.Reader
	slot *slot
	conn *vpcd.Conn
	card *pcsc.Card
}

func newViaPCSC(t testing.TB) *viaPCSC {
	env := pcsctest.Shared(t)
	card, err := vcard.New(vcard.Options{UID: testUID})
	require.NoError(t, err)
	h := &viaPCSC{env: env, slot: &slot{card: card}}
	h.r, err = pcsc.Open(env.Reader)
	require.NoError(t, err)
	t.Cleanup(h.close)
	h.insert(t)
	return h
}

// insert puts the card into the slot and connects to it through PC/SC.
func (h *viaPCSC) insert(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := vpcd.Connect(ctx, h.env.Addr(), h.slot, nil)
	require.NoError(t, err)
	h.conn = conn
	h.card, err = h.r.Wait(ctx)
	require.NoError(t, err)
}

// remove takes the card out of the slot and waits until pcscd saw it go.
func (h *viaPCSC) remove(t testing.TB) {
	t.Helper()
	h.conn.Close()
	require.NoError(t, h.env.WaitPresence(false))
	h.card.Close()
}

func (h *viaPCSC) close() {
	if h.card != nil {
		h.card.Close()
	}
	if h.conn != nil {
		h.conn.Close()
		h.env.WaitPresence(false)
	}
	h.r.Close()
}

func (h *viaPCSC) Transmit(apdu []byte) ([]byte, error) { return h.card.Transmit(apdu) }

// Tear takes the card out of the vpcd slot, as a cardholder pulling the card
// away, and puts it back: pcscd sees the removal and the new insertion, and
// the harness connects again.
func (h *viaPCSC) Tear(t *testing.T) {
	t.Helper()
	before := h.slot.powerOffs()
	h.remove(t)
	require.Greater(t, h.slot.powerOffs(), before, "the card was not powered off")
	h.insert(t)
}

// Reset puts a fresh factory card behind the reader and power-cycles it
// through pcscd.
func (h *viaPCSC) Reset(t *testing.T) {
	t.Helper()
	card, err := vcard.New(vcard.Options{UID: testUID})
	require.NoError(t, err)
	h.slot.set(card)
	require.NoError(t, h.card.PowerCycle())
}

// The conformance suite of the virtual card, run through real pcscd and vpcd.
func TestConformanceThroughPCSC(t *testing.T) {
	conformance.Run(t, newViaPCSC(t))
}
