package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/softhsm"
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

// Issue 17 L3: the commands that change the HSM (keys init, rotate,
// import) and store enrol left no audit record, and the platform's
// records (organizer 0) could be read by no one. Each now leaves one, the
// HSM's under organizer 0, which `audit records --platform` prints (and
// is recorded itself); an HSM command whose audit log cannot be opened
// changes nothing.
func TestCLIAuditedHSM(t *testing.T) {
	hsmURI := softhsm.NewTestToken(t)
	cl := pgtest.Cluster(t)
	ctx := context.Background()
	require.NoError(t, cl.CreateDatabase(ctx, "cliaudithsm"))
	url := cl.URL("cliaudithsm")
	dir := t.TempDir()
	loopcardAt := func(dbURL string, args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"loopcard", "--data-dir", dir, "--hsm", hsmURI, "--database-url", dbURL, "--operator", "bob"}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	ok := func(args ...string) string {
		out, errOut, code := loopcardAt(url, args...)
		require.Zero(t, code, "%v: %s", args, errOut)
		return out
	}
	for i, c := range []string{"0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0A0A0E0E0A0A06060A0A0E0E0A0A0606"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("c%d.hex", i+1)), []byte(c), 0o600))
	}

	ok("keys", "init", "--json")
	ok("keys", "rotate", "app-debit")
	_, _, code := loopcardAt(url, "keys", "rotate", "nope")
	require.NotZero(t, code)
	ok("keys", "import", "app-read", "--component", filepath.Join(dir, "c1.hex"), "--component", filepath.Join(dir, "c2.hex"), "--new-version")
	// With its audit log out of reach, a rotation is refused before the
	// HSM is touched.
	_, errOut, code := loopcardAt("postgres://loopcard@127.0.0.1:1/none?connect_timeout=2", "keys", "rotate", "app-debit")
	require.NotZero(t, code)
	require.Contains(t, errOut, "keys rotate: nothing was changed")
	require.NotContains(t, ok("keys", "list"), "app-debit/v3")

	ok("ledger", "init", "--organizer", "3", "--name", "Org Three")
	ok("ledger", "store", "--organizer", "3", "--store", "kiosk", "--name", "Kiosk")
	pub := ok("store", "keygen", "--organizer", "3", "--store", "kiosk", "--key-file", filepath.Join(dir, "store.key"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "store.pub"), []byte(pub), 0o600))
	ok("store", "enrol", "--organizer", "3", "--store", "kiosk", "--public-key", filepath.Join(dir, "store.pub"))

	type records struct {
		Records []struct {
			ID                     int64
			Actor, Action, Outcome string
			Detail                 string
		}
		More bool
	}
	var first records
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "records", "--platform", "--json")), &first))
	var got []string
	for _, r := range first.Records {
		require.Equal(t, "cli:bob", r.Actor)
		got = append(got, r.Action+" "+r.Outcome+" "+r.Detail)
	}
	require.Equal(t, []string{
		"cli keys init ok ",
		"cli keys rotate ok args=app-debit",
		"cli keys rotate failed args=nope",
		"cli keys import ok component=" + filepath.Join(dir, "c1.hex") + "," + filepath.Join(dir, "c2.hex") + " new-version=true args=app-read",
	}, got, "the HSM's commands, under organizer 0; not organizer 3's")
	require.False(t, first.More)
	// The reading is recorded too, after what it read.
	var next records
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "records", "--platform", "--json", "--after", fmt.Sprint(first.Records[len(first.Records)-1].ID))), &next))
	require.Len(t, next.Records, 1)
	require.Equal(t, "cli audit records ok", next.Records[0].Action+" "+next.Records[0].Outcome)
	require.Contains(t, ok("audit", "records", "--platform"), "cli keys rotate")
	_, errOut, code = loopcardAt(url, "audit", "records")
	require.NotZero(t, code)
	require.Contains(t, errOut, "usage: loopcard audit records --platform")

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var enrolled int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM api_audit WHERE org_id = 3 AND action = 'cli store enrol' AND outcome = 'ok' AND actor = 'cli:bob'`).Scan(&enrolled))
	require.Equal(t, 1, enrolled)
	var keygen int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM api_audit WHERE action = 'cli store keygen'`).Scan(&keygen))
	require.Zero(t, keygen, "store keygen changes only the store's own key")
}
