package pos_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/pos"
)

// TestTerminalTillMenus: a terminal without a menu of the server's uses
// the local file's (--menu): a basket is one version 1 debit of its total,
// which the product report shows unitemized, and a deposit return is
// refused (the ledger prices it by the server's menu) with nothing
// changed; once the terminal synced the server's menu, that menu is the
// one in use and a basket carries its lines.
func TestTerminalTillMenus(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	term := w.terminal(t)
	local := menuFile(t)
	till := pos.NewTerminalTill(term, local)
	m, ok := till.Menu()
	require.True(t, ok)
	require.Zero(t, m.Version, "the local file's menu")
	beer, ok := m.Product("beer")
	require.True(t, ok)
	cup, ok := m.Product("cup")
	require.True(t, ok)

	rd := w.reader(t)
	w.insert(t, 0)
	pay := func(lines ...pos.Line) pos.Receipt {
		card, err := rd.WaitForCard(ctx)
		require.NoError(t, err)
		defer card.Close()
		r, err := till.Pay(ctx, card, lines)
		require.NoError(t, err)
		return r
	}
	r := pay(pos.Line{Product: beer, Qty: 2})
	require.Equal(t, int64(700), r.Amount)
	require.Equal(t, int64(1300), r.BalanceAfter)

	card, err := rd.WaitForCard(ctx)
	require.NoError(t, err)
	_, err = till.ReturnDeposit(ctx, card, []pos.Line{{Product: cup, Qty: -1}})
	card.Close()
	require.ErrorIs(t, err, pos.ErrNotSupported)

	_, err = term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1300), w.ledgerBalance(t, w.cards[0]), "the return changed nothing")
	rep, err := w.stack.Ledger.Products(ctx, org, "fest", time.Time{})
	require.NoError(t, err)
	require.Len(t, rep.Lines, 1)
	require.Equal(t, "", rep.Lines[0].Product, "unitemized")
	require.Equal(t, int64(700), rep.Lines[0].Revenue)

	// HQ sets the menu; the terminal syncs it and the till prefers it.
	version := w.setMenu(t, testMenu)
	_, err = term.SyncMenu(ctx)
	require.NoError(t, err)
	m, ok = till.Menu()
	require.True(t, ok)
	require.Equal(t, version, m.Version)
	r = pay(pos.Line{Product: beer, Qty: 1}, pos.Line{Product: cup, Qty: -1})
	require.Equal(t, int64(250), r.Amount)
	_, err = term.Upload(ctx)
	require.NoError(t, err)
	rep, err = w.stack.Ledger.Products(ctx, org, "fest", time.Time{})
	require.NoError(t, err)
	got := map[string]int64{}
	for _, l := range rep.Lines {
		got[l.Product] += l.Quantity
	}
	require.Equal(t, map[string]int64{"": 1, "beer": 1, "cup": -1}, got)
}
