package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// TestStaffCLI: staff add shows an hq account's TOTP secret once and
// stores only its sealed form; list never shows a secret; disable ends
// the account; each change is audited, without the password.
func TestStaffCLI(t *testing.T) {
	cl := pgtest.Cluster(t)
	ctx := context.Background()
	require.NoError(t, cl.CreateDatabase(ctx, "staffcli"))
	url := cl.URL("staffcli")
	dir := t.TempDir()
	loopcard := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"loopcard", "--data-dir", dir, "--database-url", url, "--operator", "root"}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	ok := func(args ...string) string {
		out, errOut, code := loopcard(args...)
		require.Zero(t, code, "%v: %s", args, errOut)
		return out
	}
	const password = "a long staff password"
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(password+"\n"), 0o600))
	ok("keys", "init")
	ok("ledger", "init", "--organizer", "2", "--name", "Org Two")
	ok("ledger", "store", "--organizer", "2", "--store", "kiosk", "--name", "Kiosk")

	out := ok("staff", "add", "--organizer", "2", "--name", "alice", "--role", "hq", "--password-file", pwFile)
	require.True(t, strings.HasPrefix(out, "otpauth://totp/Loopcard:alice@2?"), out)
	var added struct {
		Secret string `json:"totp_secret"`
		URI    string `json:"totp_uri"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("staff", "add", "--organizer", "2", "--name", "sam", "--role", "store", "--store", "kiosk",
		"--password-file", pwFile, "--json")), &added))
	require.Empty(t, added.Secret, "a store account has no second factor unless asked")

	_, errOut, code := loopcard("staff", "add", "--organizer", "2", "--name", "alice", "--role", "auditor", "--password-file", pwFile)
	require.NotZero(t, code)
	require.Contains(t, errOut, "staff list")
	_, errOut, code = loopcard("staff", "add", "--organizer", "2", "--name", "bob", "--role", "store", "--password-file", pwFile)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "store account needs its store")
	short := filepath.Join(t.TempDir(), "short")
	require.NoError(t, os.WriteFile(short, []byte("short\n"), 0o600))
	_, errOut, code = loopcard("staff", "add", "--organizer", "2", "--name", "bob", "--role", "auditor", "--password-file", short)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "the password is 12 to 1024 bytes")

	ok("staff", "disable", "--organizer", "2", "--name", "sam")
	_, errOut, code = loopcard("staff", "disable", "--organizer", "2", "--name", "sam")
	require.NotZero(t, code)
	require.Contains(t, errOut, "staff list")
	list := ok("staff", "list", "--organizer", "2", "--json")
	var l struct {
		Staff []struct {
			Name     string  `json:"name"`
			Role     string  `json:"role"`
			TOTP     bool    `json:"totp"`
			Disabled *string `json:"disabled_at"`
		} `json:"staff"`
	}
	require.NoError(t, json.Unmarshal([]byte(list), &l))
	require.Len(t, l.Staff, 2)
	require.True(t, l.Staff[0].Name == "alice" && l.Staff[0].TOTP && l.Staff[0].Disabled == nil)
	require.True(t, l.Staff[1].Name == "sam" && !l.Staff[1].TOTP && l.Staff[1].Disabled != nil)
	require.NotContains(t, list, "argon2")

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var got []string
	rows, err := pool.Query(ctx, `SELECT action || ' ' || outcome, detail FROM api_audit WHERE action LIKE 'cli staff%' ORDER BY audit_id`)
	require.NoError(t, err)
	for rows.Next() {
		var a, detail string
		require.NoError(t, rows.Scan(&a, &detail))
		require.NotContains(t, detail, password)
		got = append(got, a)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"cli staff add ok", "cli staff add ok", "cli staff add failed", "cli staff add failed", "cli staff add failed",
		"cli staff disable ok", "cli staff disable failed"}, got)
	var sealed string
	require.NoError(t, pool.QueryRow(ctx, `SELECT totp_envelope::text FROM api_staff WHERE name = 'alice'`).Scan(&sealed))
	require.NotContains(t, sealed, strings.Split(strings.Split(out, "secret=")[1], "&")[0])
}
