package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEventReportTotals: the event report reads the running totals of
// migration 031, which triggers keep; after uploads from terminals side by
// side (some held), top-ups that change status and a card that spends all
// its credit, every figure is the one counted from the rows, and Verify
// finds each total that does not add up.
func TestEventReportTotals(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	terms := []*terminal{newTerminal(t, l, "t-1", "bar"), newTerminal(t, l, "t-2", "food"), newTerminal(t, l, "t-3", "bar-2")}
	cards := make([]*card, 12)
	for i := range cards {
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 1000, cards...)
	// A pending top-up: counted as pending, not on the card.
	_, err := l.TopUpCash(ctx, org, CashTopUp{Store: "store-1", Card: cards[0].uid, Amount: 700})
	require.NoError(t, err)
	// t-3 is revoked: its debits are held.
	require.NoError(t, l.RevokeTerminal(ctx, org, "t-3"))
	errs := make(chan error, len(terms))
	for i, tm := range terms {
		var batch [][]byte
		for j, c := range cards {
			if j%len(terms) == i {
				batch = append(batch, tm.pay(t, c, int64(100+j)))
				batch = append(batch, tm.pay(t, c, 50))
			}
		}
		if i == 0 {
			batch = append(batch, tm.pay(t, cards[0], cards[0].bal)) // all of it
		}
		go func() {
			_, err := l.Upload(ctx, org, batch)
			errs <- err
		}()
	}
	for range terms {
		require.NoError(t, <-errs)
	}
	requireInvariants(t, l)

	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	var want EventReport
	rows, err := l.pool.Query(ctx, `SELECT t.merchant_id, count(*), sum(t.amount)::bigint FROM terminal_txs t
		JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
		WHERE t.org_id = $1 AND c.event_id = 'fest' AND t.status = 'posted' GROUP BY 1 ORDER BY 1`, org)
	require.NoError(t, err)
	for rows.Next() {
		var s MerchantSales
		require.NoError(t, rows.Scan(&s.Merchant, &s.Count, &s.Amount))
		want.Sales = append(want.Sales, s)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, want.Sales, rep.Sales)
	require.Len(t, rep.Sales, 2, "the revoked terminal's debits are held, not sales")
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE t.status = 'held') FROM terminal_txs t WHERE t.org_id = $1`, org).Scan(&want.HeldTxs))
	require.Equal(t, want.HeldTxs, rep.HeldTxs)
	require.Positive(t, rep.HeldTxs)
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a.side * a.balance > 0), sum(a.side * a.balance)::bigint
		FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id WHERE c.org_id = $1`, org).
		Scan(&want.CardsWithMoney, &want.Outstanding))
	require.Equal(t, [2]int64{want.CardsWithMoney, want.Outstanding}, [2]int64{rep.CardsWithMoney, rep.Outstanding})
	require.Equal(t, int64(len(cards)-1), rep.CardsWithMoney, "the card that spent all is not counted")
	require.Equal(t, []ChannelTopUps{{Channel: "cash", Status: "loaded", Count: 12, Amount: 12_000},
		{Channel: "cash", Status: "pending", Count: 1, Amount: 700}}, rep.TopUps)
	var hourly int64
	for _, h := range rep.Hourly {
		hourly += h.Amount
	}
	var sales int64
	for _, s := range rep.Sales {
		sales += s.Amount
	}
	require.Equal(t, sales, hourly)

	// Each total off: Verify says which.
	for _, c := range []struct{ table, set, problem string }{
		{"terminal_sales", "count = count + 1", "terminal sales totals"},
		{"topup_totals", "amount = amount - 1", "top-up totals"},
	} {
		_, err := l.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s`, c.table, c.set))
		require.NoError(t, err)
		var ie *InvariantError
		require.True(t, errors.As(l.Verify(ctx), &ie), c.table)
		require.Contains(t, ie.Problem, c.problem)
		_, err = l.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s`, c.table,
			map[string]string{"terminal_sales": "count = count - 1", "topup_totals": "amount = amount + 1"}[c.table]))
		require.NoError(t, err)
		requireInvariants(t, l)
	}
}
