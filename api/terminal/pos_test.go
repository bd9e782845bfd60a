package terminal_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

var barMenu = []menu.Product{
	{ID: "beer", Name: "Beer 0.3l", Price: 350, VATRateBP: 2100, Category: "Drinks", AgeRestricted: true},
	{ID: "cola", Name: "Cola", Price: 250, VATRateBP: 900, Category: "Drinks"},
	{ID: "cup", Name: "Cup deposit", Price: 100, Category: "Deposit", Deposit: true},
}

// TestPointOfSale drives the POS methods against the real stack and a
// vcard: the menu is synced and kept offline, a basket with a returned cup
// is paid as a version 2 transaction with its items, a return of cups
// alone becomes a load written onto the card, and a void of the last
// payment credits the card exactly once.
func TestPointOfSale(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	dir := t.TempDir()
	term := w.terminal(t, "bar-pos", dir)
	c := w.cards[0]
	l := w.stack.Ledger

	_, ok := term.Menu()
	require.False(t, ok, "no menu set yet")
	_, err := term.SyncMenu(ctx)
	var he *terminal.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, 404, he.Status)
	_, err = term.Items([]terminal.Line{{Product: "beer", Quantity: 1}})
	require.ErrorIs(t, err, terminal.ErrNoMenu)

	_, err = l.SetMenu(ctx, org, "bar", barMenu, "test")
	require.NoError(t, err)
	m, err := term.SyncMenu(ctx)
	require.NoError(t, err)
	require.Equal(t, menu.Menu{Merchant: "bar", Version: 1, Products: barMenu}, m)

	// Kept for offline use: a terminal opened again without a server.
	cfg := w.stack.TerminalConfig(dir, "fest", "bar")
	cfg.URL = "https://127.0.0.1:1"
	require.NoError(t, term.Close())
	off, err := terminal.Open(cfg)
	require.NoError(t, err)
	got, ok := off.Menu()
	require.True(t, ok)
	require.Equal(t, m, got)
	require.NoError(t, off.Close())
	term, err = terminal.Open(w.stack.TerminalConfig(dir, "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })

	// Two beers and a returned cup: 6.00.
	_, err = term.Items([]terminal.Line{{Product: "beer", Quantity: -1}})
	require.ErrorIs(t, err, terminal.ErrNotOnMenu, "only deposit items are returned")
	_, err = term.Items([]terminal.Line{{Product: "wine", Quantity: 1}})
	require.ErrorIs(t, err, terminal.ErrNotOnMenu)
	items, err := term.Items([]terminal.Line{{Product: "beer", Quantity: 2}, {Product: "cup", Quantity: -1}})
	require.NoError(t, err)
	s, err := term.Pay(c.Field(), items)
	require.NoError(t, err)
	require.Equal(t, int64(600), s.Amount)
	require.Equal(t, int64(400), s.BalanceAfter)
	require.Equal(t, byte(terminaltx.VersionItems), s.Bytes()[4])
	res, err := term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, res.Accepted)
	require.Equal(t, int64(400), w.ledgerBalance(t, c))

	// Cups only: not a payment, a deposit return.
	cups, err := term.Items([]terminal.Line{{Product: "cup", Quantity: -2}})
	require.NoError(t, err)
	_, err = term.Pay(c.Field(), cups)
	require.ErrorIs(t, err, terminal.ErrNotAPayment)
	cr, err := term.DepositReturn(ctx, c.Field(), cups)
	require.NoError(t, err)
	require.Equal(t, int64(200), cr.Amount)
	require.NotNil(t, cr.Written, "written onto the card in the field")
	require.Equal(t, terminal.CardWrite{Seq: 3, Before: 400, After: 600}, *cr.Written.Write)
	require.Equal(t, int64(600), w.ledgerBalance(t, c))
	// A forged price is refused by the ledger and changes nothing.
	_, err = term.DepositReturn(ctx, c.Field(), []terminaltx.Item{{Product: "cup", Quantity: -1, UnitPrice: 5000, MenuVersion: 1}})
	require.ErrorAs(t, err, &he)
	require.Equal(t, 400, he.Status)
	require.Equal(t, int64(600), w.ledgerBalance(t, c))

	// A cola, voided while the card is on the reader.
	items, err = term.Items([]terminal.Line{{Product: "cola", Quantity: 1}})
	require.NoError(t, err)
	s, err = term.Pay(c.Field(), items)
	require.NoError(t, err)
	v, err := term.VoidLast(ctx, c.Field())
	require.NoError(t, err)
	require.Equal(t, s.ID, v.Payment)
	require.Equal(t, int64(250), v.Amount)
	require.NotNil(t, v.Written)
	require.Equal(t, terminal.CardWrite{Seq: 5, Before: 350, After: 600}, *v.Written.Write)
	require.Equal(t, int64(600), w.ledgerBalance(t, c))
	// Once: voiding it again is refused and credits nothing.
	_, err = term.Void(ctx, c.Field(), s.ID)
	require.ErrorAs(t, err, &he)
	require.Equal(t, 409, he.Status)
	require.Equal(t, int64(600), w.ledgerBalance(t, c))
	corr, err := l.Corrections(ctx, org)
	require.NoError(t, err)
	require.Len(t, corr, 1)
	require.Equal(t, s.ID, corr[0].Payment)

	// The card agrees with the ledger: the next payment starts from 6.00.
	s, err = term.Debit(c.Field(), 10)
	require.NoError(t, err)
	require.Equal(t, int64(600), s.BalanceBefore)
	_, err = term.Upload(ctx)
	require.NoError(t, err)
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Empty(t, alerts)

	// The menu comes along with a session key.
	_, err = l.SetMenu(ctx, org, "bar", barMenu[:2], "test")
	require.NoError(t, err)
	require.NoError(t, term.RenewSessionKey(ctx))
	m, _ = term.Menu()
	require.Equal(t, int32(2), m.Version)
}
