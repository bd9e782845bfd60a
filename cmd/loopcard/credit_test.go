package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// TestLedgerCorrectionsCLI: HQ sets the threshold, corrects a payment
// within it (posted) and above it (awaiting); the operator who asked
// cannot approve it, another can; the merchant is charged back; vouchers
// are written once to a new file; each command is audited with its
// operator.
func TestLedgerCorrectionsCLI(t *testing.T) {
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
	pay := tx.ID.String()

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
	loopcard(0, "--operator", "alice", "ledger", "correction-threshold", "--above", "100")
	var c1, c2 correctionRow
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "--operator", "alice", "ledger", "correct", "--payment", pay, "--amount", "50",
		"--reason", "one coke too many", "--json")), &c1))
	require.Equal(t, ledger.CorrectionPosted, c1.Status)
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "--operator", "alice", "ledger", "correct", "--payment", pay, "--amount", "500",
		"--reason", "round refused", "--json")), &c2))
	require.Equal(t, ledger.CorrectionAwaitingApproval, c2.Status)
	out := loopcard(1, "--operator", "alice", "ledger", "approve-correction", "--correction", c2.ID)
	require.Contains(t, out, "another operator approves it")
	out = loopcard(1, "--operator", "bob", "ledger", "correct", "--payment", pay, "--amount", "51", "--reason", "beyond")
	require.Contains(t, out, "corrections would exceed the payment")
	out = loopcard(0, "--operator", "bob", "ledger", "approve-correction", "--correction", c2.ID)
	require.Contains(t, out, "posted")
	bal, err := l.Balance(ctx, 1, ledger.Merchant, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(50), bal, "charged back")
	var rows []correctionRow
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "corrections", "--json")), &rows))
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Equal(t, ledger.CorrectionPosted, r.Status)
	}
	require.Equal(t, "cli:bob", rows[0].ApprovedBy+rows[1].ApprovedBy)

	// Vouchers: written once, to a new file.
	file := filepath.Join(t.TempDir(), "codes.txt")
	loopcard(0, "--operator", "carol", "ledger", "vouchers", "--event", "fest", "--amount", "300", "--count", "2",
		"--expires", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--label", "crew", "--out", file)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	codes := strings.Fields(string(b))
	require.Len(t, codes, 2)
	loopcard(1, "ledger", "vouchers", "--event", "fest", "--amount", "300", "--count", "2",
		"--expires", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--out", file)
	code, err := ledger.ParseVoucherCode(codes[0])
	require.NoError(t, err)
	_, _, err = l.RedeemVoucher(ctx, 1, ledger.VoucherRedemption{Card: card, Code: code, Actor: "test"})
	require.NoError(t, err)
	var credit map[string]int64
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "credit", "--card", terminaltx.CardHex(card), "--json")), &credit))
	require.Equal(t, map[string]int64{"total": 400, "refundable": 400, "non_refundable": 0, "pending_refundable": 550,
		"pending_non_refundable": 300}, credit)

	var audit []string
	rs, err := pool.Query(ctx, `SELECT actor || ' ' || action || ' ' || outcome FROM api_audit ORDER BY audit_id`)
	require.NoError(t, err)
	for rs.Next() {
		var s string
		require.NoError(t, rs.Scan(&s))
		audit = append(audit, s)
	}
	require.NoError(t, rs.Err())
	require.Equal(t, []string{"cli:alice cli ledger correction-threshold ok", "cli:alice cli ledger correct ok", "cli:alice cli ledger correct ok",
		"cli:alice cli ledger approve-correction failed", "cli:bob cli ledger correct failed", "cli:bob cli ledger approve-correction ok",
		"cli:carol cli ledger vouchers ok"}, audit[:7])
	require.NoError(t, l.Verify(ctx))
}
