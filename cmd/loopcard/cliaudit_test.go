package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// Issue 17 L3: HQ's commands that change the database directly (token
// issue, ledger store, ...) left no audit record, and a staff token could
// not be revoked. Each now leaves a record, with the operator, in the log
// the auditors export; a revoked token is listed as revoked.
func TestCLIAudited(t *testing.T) {
	cl := pgtest.Cluster(t)
	ctx := context.Background()
	require.NoError(t, cl.CreateDatabase(ctx, "cliaudit"))
	url := cl.URL("cliaudit")
	dir := t.TempDir()
	loopcard := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"loopcard", "--data-dir", dir, "--database-url", url, "--operator", "alice"}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	ok := func(args ...string) string {
		out, errOut, code := loopcard(args...)
		require.Zero(t, code, "%v: %s", args, errOut)
		return out
	}
	ok("ledger", "init", "--organizer", "2", "--name", "Org Two")
	ok("ledger", "store", "--organizer", "2", "--store", "kiosk", "--name", "Kiosk")
	var issued struct{ Token, ID string }
	require.NoError(t, json.Unmarshal([]byte(ok("token", "issue", "--organizer", "2", "--role", "auditor", "--json")), &issued))
	// A refused command is recorded too.
	_, _, code := loopcard("ledger", "store", "--organizer", "2", "--store", "bad", "--name", "a\tb")
	require.NotZero(t, code)
	ok("token", "revoke", "--organizer", "2", "--id", issued.ID)
	var list struct {
		Tokens []struct {
			ID      string
			Revoked *string `json:"revoked_at"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(ok("token", "list", "--organizer", "2", "--json")), &list))
	require.Len(t, list.Tokens, 1)
	require.Equal(t, issued.ID, list.Tokens[0].ID)
	require.NotNil(t, list.Tokens[0].Revoked)
	_, errOut, code := loopcard("token", "revoke", "--organizer", "1", "--id", issued.ID)
	require.NotZero(t, code, "another organizer's token is not found")
	require.Contains(t, errOut, "token list")

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT org_id, actor, action, outcome, detail FROM api_audit ORDER BY audit_id`)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var org int64
		var actor, action, outcome, detail string
		require.NoError(t, rows.Scan(&org, &actor, &action, &outcome, &detail))
		require.Equal(t, "cli:alice", actor)
		require.NotContains(t, detail, issued.Token)
		got = append(got, strings.Join([]string{action, outcome}, " "))
		if action == "cli token revoke" && outcome == "ok" {
			require.Equal(t, int64(2), org)
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"cli ledger init ok", "cli ledger store ok", "cli token issue ok", "cli ledger store failed",
		"cli token revoke ok", "cli token revoke failed"}, got)
}
