package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEventReportTotals: the event report reads the totals of migrations
// 031 and 033; after uploads from terminals side by side (some held) while
// two roll-ups run over and over (two serve processes), top-ups that
// change status and a card that spends all its credit, every figure is the
// one counted from the rows, and Verify finds each total that does not add
// up.
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
	rollCtx, stopRolling := context.WithCancel(ctx)
	rolled := make(chan int, 2)
	for range 2 {
		go func() {
			n := 0
			for rollCtx.Err() == nil {
				if err := l.RollUp(rollCtx); err != nil && rollCtx.Err() == nil {
					t.Error(err)
				}
				n++
			}
			rolled <- n
		}()
	}
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
	stopRolling()
	require.Positive(t, <-rolled+<-rolled)
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

	// Rolled up to the end, the report is the same.
	require.NoError(t, l.RollUp(ctx))
	again, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, rep, again)
	var sums int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM terminal_sales) + (SELECT count(*) FROM card_totals)`).Scan(&sums))
	require.Positive(t, sums)

	// Each total off: Verify says which.
	for _, c := range []struct{ table, set, problem string }{
		{"terminal_sales", "count = count + 1", "terminal sales totals"},
		{"topup_totals", "amount = amount - 1", "top-up totals"},
		{"card_totals", "with_money = with_money + 1", "card totals"},
		{"card_totals", "outstanding = outstanding - 1", "card totals"},
	} {
		_, err := l.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s`, c.table, c.set))
		require.NoError(t, err)
		var ie *InvariantError
		require.True(t, errors.As(l.Verify(ctx), &ie), c.table)
		require.Contains(t, ie.Problem, c.problem)
		_, err = l.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s`, c.table, map[string]string{"count = count + 1": "count = count - 1",
			"amount = amount - 1": "amount = amount + 1", "with_money = with_money + 1": "with_money = with_money - 1",
			"outstanding = outstanding - 1": "outstanding = outstanding + 1"}[c.set]))
		require.NoError(t, err)
		requireInvariants(t, l)
	}
}

// TestRollUpAroundOpenTransaction: a roll-up leaves its mark below a
// transaction still running, so the credit that transaction moves, written
// before the later uploads the roll-up took in and committed after them,
// is counted once: not lost below the mark, not counted again by the next
// roll-up. The event report equals the cards' balances at every step.
func TestRollUpAroundOpenTransaction(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	tm := newTerminal(t, l, "t-1", "bar")
	cards := []*card{newCard(1), newCard(2), newCard(3)}
	fund(t, l, 1000, cards...)
	require.NoError(t, l.RollUp(ctx))
	live := func() [2]int64 {
		t.Helper()
		var w [2]int64
		require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE a.side * a.balance > 0), coalesce(sum(a.side * a.balance), 0)::bigint
			FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id WHERE c.org_id = $1 AND c.event_id = 'fest'`, org).Scan(&w[0], &w[1]))
		return w
	}
	report := func() ([2]int64, int64) {
		t.Helper()
		rep, err := l.Event(ctx, org, "fest")
		require.NoError(t, err)
		var sold int64
		for _, s := range rep.Sales {
			sold += s.Amount
		}
		return [2]int64{rep.CardsWithMoney, rep.Outstanding}, sold
	}
	mark := func() int64 {
		t.Helper()
		var upto int64
		require.NoError(t, l.pool.QueryRow(ctx, `SELECT upto FROM dashboard_rollups WHERE org_id = $1`, org).Scan(&upto))
		return upto
	}

	// A transaction that takes all of card 3's credit (as a refund would)
	// and stays open.
	var card3, payable int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT account_id FROM cards WHERE org_id = $1 AND card_id = $2`, org, cards[2].uid).Scan(&card3))
	require.NoError(t, l.pool.QueryRow(ctx, `INSERT INTO accounts (org_id, kind, ref, side) VALUES ($1, 'refunds_payable', 'rollup-test', -1)
		RETURNING account_id`, org).Scan(&payable))
	open, err := l.pool.Begin(ctx)
	require.NoError(t, err)
	defer open.Rollback(ctx)
	var openXact int64
	require.NoError(t, open.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&openXact))
	_, err = open.Exec(ctx, `INSERT INTO journal (org_id, txn_id, kind, event_id, at) VALUES ($1, '00000000-0000-4000-8000-00000000a001', 'refund', 'fest', now())`, org)
	require.NoError(t, err)
	_, err = open.Exec(ctx, `INSERT INTO postings (org_id, txn_id, line, account_id, amount) VALUES
		($1, '00000000-0000-4000-8000-00000000a001', 1, $2, 1000), ($1, '00000000-0000-4000-8000-00000000a001', 2, $3, -1000)`, org, card3, payable)
	require.NoError(t, err)

	// Later transactions commit and are rolled up around it.
	_, err = l.Upload(ctx, org, [][]byte{tm.pay(t, cards[0], 300), tm.pay(t, cards[1], 1000)})
	require.NoError(t, err)
	require.NoError(t, l.RollUp(ctx))
	require.LessOrEqual(t, mark(), openXact, "the mark passed a running transaction")
	got, sold := report()
	require.Equal(t, live(), got)
	require.Equal(t, [2]int64{2, 1700}, got)
	require.Equal(t, int64(1300), sold)

	require.NoError(t, open.Commit(ctx))
	got, _ = report()
	require.Equal(t, live(), got)
	require.Equal(t, [2]int64{1, 700}, got, "card 3's credit is gone")
	require.NoError(t, l.RollUp(ctx))
	require.Greater(t, mark(), openXact)
	got, sold = report()
	require.Equal(t, [2]int64{1, 700}, got)
	require.Equal(t, int64(1300), sold)
	requireInvariants(t, l)

	// Nothing runs: the mark passes every row, the totals alone are the figures.
	var above int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM terminal_txs WHERE xact >= $1) + (SELECT count(*) FROM postings WHERE xact >= $1)`, mark()).Scan(&above))
	require.Zero(t, above)
	var totals [2]int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT with_money, outstanding FROM card_totals WHERE org_id = $1 AND event_id = 'fest'`, org).Scan(&totals[0], &totals[1]))
	require.Equal(t, [2]int64{1, 700}, totals)

	// With nothing new, a roll-up writes nothing.
	before := mark()
	require.NoError(t, l.RollUp(ctx))
	require.Equal(t, before, mark())
}
