package terminal_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
)

// TestDebitThroughPCSC takes payments from a card in a PC/SC reader: a
// private pcscd with the vpcd driver, the virtual card on its socket, as
// `loopcard terminal pay --reader` does.
func TestDebitThroughPCSC(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	term := w.terminal(t, "bar-p", t.TempDir())
	env := pcsctest.Start(t)
	env.Insert(t, w.cards[0].Card)
	r, err := pcsc.Open(env.Reader)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	card, err := r.WaitForCard(wctx)
	require.NoError(t, err)
	t.Cleanup(func() { card.Close() })
	for i, amount := range []int64{150, 250} {
		s, err := term.Debit(card, amount)
		require.NoError(t, err)
		require.Equal(t, uint32(i+2), s.CardSeq)
		require.Equal(t, w.cards[0].UID, s.Card)
	}
	r2, err := term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, r2.Accepted)
	require.Equal(t, int64(600), w.ledgerBalance(t, w.cards[0]))
}
