package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// TestLedgerReviewUnblockCLI: HQ lists a clone alert, reviews it and
// unblocks the card with `loopcard ledger alerts|review|unblock --json`;
// unblocking before the review is refused and says what to run, and
// every action is recorded with who and why.
func TestLedgerReviewUnblockCLI(t *testing.T) {
	ctx := context.Background()
	l, pool := cliLedger(t)
	key := cliBarTerminal(t, l)
	card := []byte{0x04, 1, 2, 3, 4, 5, 6}
	require.NoError(t, l.RegisterCards(ctx, 1, "fest", [][]byte{card}))
	require.NoError(t, l.AddStore(ctx, 1, "gate", "Gate"))
	load, err := l.TopUpCash(ctx, 1, ledger.CashTopUp{Store: "gate", Card: card, Amount: 100})
	require.NoError(t, err)
	require.NoError(t, l.LoadPending(ctx, 1, card, load, nil))
	// Two signed debits with one card sequence: a clone, which blocks.
	var txs [][]byte
	for i, amount := range []int64{10, 20} {
		tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(time.Now(), []byte{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9}), Organizer: 1,
			Terminal: "bar-1", TerminalSeq: int64(i + 1), Card: card, CardSeq: 1, Amount: amount, Merchant: "bar", Time: time.Now(),
			BalanceBefore: 100, BalanceAfter: 100 - amount}
		s, err := terminaltx.Sign(&tx, key)
		require.NoError(t, err)
		txs = append(txs, s.Bytes())
	}
	_, err = l.Upload(ctx, 1, txs)
	require.NoError(t, err)

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
	var rows []alertRow
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "alerts", "--json")), &rows))
	var clone alertRow
	for _, r := range rows {
		if r.Kind == "clone" {
			clone = r
		}
	}
	require.Equal(t, "open", clone.State)
	require.True(t, clone.Blocking)
	hex := terminaltx.CardHex(card)

	out := loopcard(1, "ledger", "unblock", "--card", hex, "--reason", "looks fine")
	require.Contains(t, out, "review it first with 'loopcard ledger review --alert ID --reason ...'")
	out = loopcard(1, "ledger", "review", "--alert", "nonsense", "--reason", "x")
	require.Contains(t, out, "--alert: want an alert id")

	var rv alertRow
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "review", "--alert", clone.ID, "--reason", "terminal fault", "--json")), &rv))
	require.Equal(t, "reviewed", rv.State)
	require.Regexp(t, `^cli`, rv.ReviewedBy)
	out = loopcard(1, "ledger", "review", "--alert", clone.ID, "--reason", "again")
	require.Contains(t, out, "reviewed before")

	out = loopcard(0, "ledger", "unblock", "--card", hex, "--reason", "no clone: terminal fault", "--json")
	require.JSONEq(t, `{"card": "`+hex+`", "status": "active"}`, out)
	info, err := l.Card(ctx, 1, card)
	require.NoError(t, err)
	require.Equal(t, "active", info.Status)
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM card_alert_actions WHERE org_id = 1 AND actor LIKE 'cli%'`).Scan(&n))
	require.Equal(t, 2, n, "the review and the unblocking are recorded")
}
