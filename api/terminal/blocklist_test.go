package terminal_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger"
)

// TestLostCardBlockedOfflineAndReplaced is issue 21's lost card: a store
// blocks it while two terminals are offline; the one that fetched the
// blocklist refuses the card and records the tap, the other takes a
// payment before it syncs; the card is replaced at the store; after both
// upload, the new card holds the old balance less that payment, the
// merchant is paid and the ledger sums to zero.
func TestLostCardBlockedOfflineAndReplaced(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2, "")
	lost, fresh := w.cards[0], w.cards[1]
	l := w.stack.Ledger
	a := w.terminal(t, "bar-a", t.TempDir())
	b := w.terminal(t, "bar-b", t.TempDir())
	require.NoError(t, l.SetReplacementHold(ctx, org, 500, 0))

	// A payment before anything is lost.
	_, err := a.Debit(lost.Field(), 100)
	require.NoError(t, err)
	_, err = a.Upload(ctx)
	require.NoError(t, err)

	// The cardholder reports the card lost at the store's desk.
	cfg := storeclient.Config{URL: w.stack.URL, HTTP: w.stack.HTTP, Org: org, Store: "store-a", Token: w.store}
	br, err := storeclient.Block(ctx, cfg, lost.UID, "lost at the main stage")
	require.NoError(t, err)
	require.Equal(t, uint64(1), br.Blocklist)

	// Terminal A syncs (nothing to upload) and goes offline with the list;
	// B stays offline without it.
	require.NoError(t, a.SyncBlocklist(ctx))
	v, n := a.BlocklistVersion()
	require.Equal(t, uint64(1), v)
	require.Equal(t, 1, n)
	v, _ = b.BlocklistVersion()
	require.Zero(t, v)

	// Offline: A refuses the card and records the tap; B takes a payment.
	_, err = a.Debit(lost.Field(), 200)
	require.ErrorIs(t, err, terminal.ErrCardBlocked)
	taps, err := a.RefusedTaps()
	require.NoError(t, err)
	require.Len(t, taps, 1)
	require.Equal(t, lost.UIDHex(), taps[0].Card)
	_, err = b.Debit(lost.Field(), 300)
	require.NoError(t, err)
	_, err = b.Debit(fresh.Field(), 50)
	require.NoError(t, err)

	// The card is replaced at the store: the new card takes the ledger's
	// 900 less the hold of 500 at once.
	// The store holds the new card by the custody log (issue 17).
	require.NoError(t, l.ReceiveCards(ctx, org, "store-a", w.batch, len(w.cards)))
	sc, err := w.stack.StoreClient(ctx, org, w.store, "store-a")
	require.NoError(t, err)
	res, err := sc.Replace(ctx, fresh.Field(), lost.UID, "lost at the main stage")
	require.NoError(t, err)
	require.NotNil(t, res.Replacement)
	require.Equal(t, int64(900), res.Replacement.Balance)
	require.Equal(t, int64(500), res.Replacement.Hold)
	require.NotNil(t, res.Load)
	require.Equal(t, terminal.CardWrite{Seq: 3, Before: 950, After: 1350}, *res.Load.Write)

	// A uploads its refused tap and says it synced past the block; B has
	// not, so the hold waits.
	require.NoError(t, a.SyncBlocklist(ctx))
	taps, err = a.RefusedTaps()
	require.NoError(t, err)
	require.Empty(t, taps, "the refused tap was uploaded")
	refused, err := l.RefusedTaps(ctx, org, lost.UID)
	require.NoError(t, err)
	require.Equal(t, 1, refused)
	rp, err := l.CardReplacement(ctx, org, lost.UID)
	require.NoError(t, err)
	require.False(t, rp.Settled, "terminal B has not synced past the block")

	// B comes online: its payment is paid from the hold, and it takes the
	// list; its next sync settles the replacement.
	r, err := b.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, r.Accepted)
	v, _ = b.BlocklistVersion()
	require.Equal(t, uint64(1), v)
	rp, err = l.CardReplacement(ctx, org, lost.UID)
	require.NoError(t, err)
	require.False(t, rp.Settled, "B's upload was sent with the list it had before")
	require.NoError(t, b.SyncBlocklist(ctx))
	rp, err = l.CardReplacement(ctx, org, lost.UID)
	require.NoError(t, err)
	require.True(t, rp.Settled)
	require.Equal(t, int64(200), rp.Rest)

	// The rest is a pending load of the new card, written when it is
	// presented to an online terminal.
	loads, err := a.WritePendingLoads(ctx, fresh.Field(), a.ConfirmLoad)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, terminal.CardWrite{Seq: 4, Before: 1350, After: 1550}, *loads[0].Write)

	// The new card holds the old balance (900) less B's payment (300),
	// on the card and in the ledger; the old card holds nothing.
	require.Equal(t, int64(1000-50+900-300), w.ledgerBalance(t, fresh))
	require.Zero(t, w.ledgerBalance(t, lost))
	paid, err := l.Balance(ctx, org, ledger.Merchant, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(100+300+50), paid, "the merchant is paid every payment it took")
	require.NoError(t, l.Verify(ctx))

	// A refused card stays refused after the replacement; the new card pays.
	_, err = b.Debit(lost.Field(), 10)
	require.ErrorIs(t, err, terminal.ErrCardBlocked)
	_, err = b.Debit(fresh.Field(), 10)
	require.NoError(t, err)
}
