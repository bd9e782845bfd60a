package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// TestBusinessDayCLI: HQ sets the business day (audited; a bad zone
// changes nothing), settings show it, and `report products` prints the
// ledger's product report as JSON and CSV, its totals the merchant's.
func TestBusinessDayCLI(t *testing.T) {
	ctx := context.Background()
	l, pool := cliLedger(t)
	key := cliBarTerminal(t, l)
	card := []byte{0x04, 1, 2, 3, 4, 5, 6}
	require.NoError(t, l.RegisterCards(ctx, 1, "fest", [][]byte{card}))
	require.NoError(t, l.AddStore(ctx, 1, "gate", "Gate"))
	load, err := l.TopUpCash(ctx, 1, ledger.CashTopUp{Store: "gate", Card: card, Amount: 1000})
	require.NoError(t, err)
	require.NoError(t, l.LoadPending(ctx, 1, card, load, nil))
	tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(time.Now(), []byte{1, 1, 2, 3, 4, 5, 6, 7, 8, 9}), Organizer: 1,
		Terminal: "bar-1", TerminalSeq: 1, Card: card, CardSeq: 1, Amount: 600, Merchant: "bar", Time: time.Now(),
		BalanceBefore: 1000, BalanceAfter: 400}
	s, err := terminaltx.Sign(&tx, key)
	require.NoError(t, err)
	res, err := l.Upload(ctx, 1, [][]byte{s.Bytes()})
	require.NoError(t, err)
	require.Equal(t, ledger.Accepted, res[0].Status)
	// Two beers at 21 % and a cup at 0 %: 2*250 + 100.
	for i, it := range []struct {
		product       string
		qty           int
		price, rateBP int64
	}{{"beer", 2, 250, 2100}, {"cup", 1, 100, 0}} {
		_, err := pool.Exec(ctx, `INSERT INTO terminal_tx_items (org_id, txn_id, line, merchant_id, at, product_id, quantity, unit_price,
			vat_rate_bp, menu_version) VALUES (1, $1, $2, 'bar', $3, $4, $5, $6, $7, 1)`, tx.ID.String(), i+1, tx.Time, it.product, it.qty, it.price, it.rateBP)
		require.NoError(t, err)
	}

	loopcard := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"loopcard"}, args...), &out, &errb)
		require.Equal(t, want, code, "%v: %s%s", args, out.String(), errb.String())
		if want != 0 {
			return errb.String()
		}
		return out.String()
	}
	msg := loopcard(1, "--operator", "alice", "ledger", "business-day", "--time-zone", "Mars/Olympus")
	require.Contains(t, msg, "IANA")
	require.Contains(t, msg, "nothing was changed")
	require.Contains(t, loopcard(0, "--operator", "alice", "ledger", "business-day", "--time-zone", "Europe/Amsterdam", "--day-end-hour", "5"),
		"business days end at 05:00 Europe/Amsterdam")
	var set ledger.OrganizerSettings
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "settings", "--json")), &set))
	require.Equal(t, "Europe/Amsterdam", set.TimeZone)
	require.Equal(t, 5, set.DayEndHour)
	require.Contains(t, loopcard(0, "ledger", "settings"), "ends at 05:00 Europe/Amsterdam")

	var rep ledger.ProductReport
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "report", "products", "--event", "fest", "--json")), &rep))
	want, err := l.Products(ctx, 1, "fest", time.Time{})
	require.NoError(t, err)
	require.Equal(t, want, rep)
	require.Equal(t, int64(600), rep.Total)
	require.Len(t, rep.Rates, 2)
	require.Equal(t, int64(87), *rep.Rates[1].VAT, "21 % of 5.00 VAT-inclusive is 0.8678")
	rows, err := csv.NewReader(strings.NewReader(loopcard(0, "report", "products", "--event", "fest", "--csv", "--day", rep.Lines[0].Day))).ReadAll()
	require.NoError(t, err)
	day := rep.Lines[0].Day
	require.Equal(t, [][]string{{"day", "merchant", "product", "name", "vat_rate_bp", "quantity", "revenue", "vat"},
		{day, "bar", "beer", "beer", "2100", "2", "500", "87"}, {day, "bar", "cup", "cup", "0", "1", "100", "0"},
		{day, "bar", "vat", "", "0", "", "100", "0"}, {day, "bar", "vat", "", "2100", "", "500", "87"}}, rows)
	require.Contains(t, loopcard(0, "report", "products", "--event", "fest"), "total: 1 transactions, 6.00")
	require.Contains(t, loopcard(1, "report", "products", "--event", "fest", "--day", "tomorrow"), "--day: want YYYY-MM-DD")

	var audit []string
	rs, err := pool.Query(ctx, `SELECT actor || ' ' || action || ' ' || outcome FROM api_audit ORDER BY audit_id`)
	require.NoError(t, err)
	for rs.Next() {
		var s string
		require.NoError(t, rs.Scan(&s))
		audit = append(audit, s)
	}
	require.NoError(t, rs.Err())
	require.Equal(t, []string{"cli:alice cli ledger business-day failed", "cli:alice cli ledger business-day ok"}, audit)
}
