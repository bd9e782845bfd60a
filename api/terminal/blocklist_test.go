package terminal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
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

// TestTerminalWithoutPinnedKey: a terminal enrolled before the blocklist
// (its identity names no hq-sign key) says when it opens that it cannot
// refuse blocked cards offline and what to do; it does not pin a key at
// its next session-key fetch or upload (trust on first use would let
// whoever answered first sign its blocklist), so a blocked card is still
// taken offline, and its debit is paid to the merchant.
func TestTerminalWithoutPinnedKey(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	card := w.cards[0]
	dir := t.TempDir()
	term := w.terminal(t, "bar-old", dir)
	require.True(t, term.BlocklistPinned())
	require.NoError(t, term.Close())
	// The identity as a terminal enrolled before the blocklist has it.
	path := filepath.Join(dir, terminal.IdentityFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var id map[string]any
	require.NoError(t, json.Unmarshal(b, &id))
	require.Contains(t, id, "hq_key")
	delete(id, "hq_key")
	b, err = json.Marshal(id)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))

	var logs bytes.Buffer
	cfg := w.stack.TerminalConfig(dir, "fest", "bar")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	old, err := terminal.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { old.Close() })
	require.False(t, old.BlocklistPinned())
	require.Contains(t, logs.String(), "blocked, lost and stolen cards are NOT refused offline")
	require.Contains(t, logs.String(), "loopcard terminal enrol")

	cfgStore := storeclient.Config{URL: w.stack.URL, HTTP: w.stack.HTTP, Org: org, Store: "store-a", Token: w.store}
	_, err = storeclient.Block(ctx, cfgStore, card.UID, "lost")
	require.NoError(t, err)
	require.NoError(t, old.RenewSessionKey(ctx))
	require.NoError(t, old.SyncBlocklist(ctx))
	_, err = old.Upload(ctx)
	require.NoError(t, err)
	require.False(t, old.BlocklistPinned(), "no key taken from the server")
	v, n := old.BlocklistVersion()
	require.Zero(t, v)
	require.Zero(t, n)
	_, err = old.Debit(card.Field(), 100)
	require.NoError(t, err, "without the blocklist the card is taken offline")
	// The merchant keeps it, as a payment any terminal took before it
	// synced the block (a replacement's hold covers it).
	res, err := old.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
}
