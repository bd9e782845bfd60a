package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// TestLedgerBlockCLI: HQ blocks a lost card with `loopcard ledger block`,
// which puts it on the blocklist (a new version, the card listed), a
// second block says so, `ledger unblock` takes it off again (a newer
// version, the card unlisted), and the hold of replacements is set.
func TestLedgerBlockCLI(t *testing.T) {
	ctx := context.Background()
	l, pool := cliLedger(t)
	card := []byte{0x04, 1, 2, 3, 4, 5, 6}
	require.NoError(t, l.RegisterCards(ctx, 1, "fest", [][]byte{card, {0x04, 9, 9, 9, 9, 9, 9}}))
	hex := terminaltx.CardHex(card)

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
	require.Contains(t, loopcard(1, "ledger", "block", "--card", hex, "--reason", ""), "--reason")
	var got struct {
		Card      string `json:"card"`
		Status    string `json:"status"`
		Blocklist uint64 `json:"blocklist"`
		Again     bool   `json:"again"`
	}
	require.NoError(t, json.Unmarshal([]byte(loopcard(0, "ledger", "block", "--card", hex, "--reason", "lost", "--json")), &got))
	require.Equal(t, "blocked", got.Status)
	require.Equal(t, uint64(1), got.Blocklist)
	require.False(t, got.Again)
	require.Contains(t, loopcard(0, "ledger", "block", "--card", hex, "--reason", "lost"), "blocked already")

	ch, err := l.Blocklist(ctx, 1, 0, true)
	require.NoError(t, err)
	require.Equal(t, uint64(1), ch.Version)
	require.Equal(t, [][]byte{card}, ch.All)

	require.Contains(t, loopcard(0, "ledger", "unblock", "--card", hex, "--reason", "found again"), "unblocked")
	ch, err = l.Blocklist(ctx, 1, 1, true)
	require.NoError(t, err)
	require.Equal(t, uint64(2), ch.Version)
	require.Equal(t, [][]byte{card}, ch.Unlisted, "the delta from version 1 takes the card off")
	require.Empty(t, ch.All)

	require.Contains(t, loopcard(1, "ledger", "replacement-hold", "--cents", "100", "--percent", "101"), "--percent")
	require.Contains(t, loopcard(0, "ledger", "replacement-hold", "--cents", "1000", "--percent", "10"), "10%")
	require.Contains(t, loopcard(0, "ledger", "settle-replacements"), "0 replacements settled")

	// Each action is recorded with who did it and why.
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM card_alert_actions WHERE card_id = $1 AND action IN ('block', 'unblock')`, card).Scan(&n))
	require.Equal(t, 2, n)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM api_audit WHERE action = 'cli ledger block'`).Scan(&n))
	require.Equal(t, 3, n, "every run of ledger block is audited, the refused one too")
}
