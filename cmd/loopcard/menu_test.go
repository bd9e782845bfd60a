package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// TestMenuCLI: menu set from JSON and from CSV makes versions 1 and 2;
// menu show prints the current one (--json for machines); a bad file and
// an unknown merchant are refused with the next command and change
// nothing; each set is audited with its operator.
func TestMenuCLI(t *testing.T) {
	cl := pgtest.Cluster(t)
	ctx := context.Background()
	require.NoError(t, cl.CreateDatabase(ctx, "menucli"))
	url := cl.URL("menucli")
	dir := t.TempDir()
	loopcard := func(args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"loopcard", "--data-dir", dir, "--database-url", url, "--operator", "ann"}, args...), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	ok := func(args ...string) string {
		out, errOut, code := loopcard(args...)
		require.Zero(t, code, "%v: %s", args, errOut)
		return out
	}
	files := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(files, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	jsonFile := write("menu.json", `{"products":[{"id":"beer","name":"Beer 0.3l","price":350,"vat_rate_bp":2100,
		"category":"Drinks","age_restricted":true},{"id":"cup","name":"Cup deposit","price":100,"vat_rate_bp":0,
		"category":"Deposit","deposit":true}]}`)
	csvFile := write("menu.csv", "id,name,price,vat_rate_bp,category,age_restricted,deposit\ncola,Cola,250,900,Drinks,false,false\n")
	badFile := write("bad.csv", "id,name,price,vat_rate_bp,category,age_restricted,deposit\ncola,Cola,2.50,900,Drinks,false,false\n")

	ok("ledger", "init", "--organizer", "1", "--name", "Org")
	ok("ledger", "merchant", "--organizer", "1", "--merchant", "bar", "--name", "Bar")
	_, errOut, code := loopcard("menu", "show", "--merchant", "bar")
	require.NotZero(t, code)
	require.Contains(t, errOut, "loopcard menu set --merchant bar FILE")

	require.Contains(t, ok("menu", "set", "--merchant", "bar", jsonFile), "version 1 with 2 products")
	var m menu.Menu
	require.NoError(t, json.Unmarshal([]byte(ok("menu", "show", "--merchant", "bar", "--json")), &m))
	require.Equal(t, int32(1), m.Version)
	require.Equal(t, menu.Product{ID: "cup", Name: "Cup deposit", Price: 100, Category: "Deposit", Deposit: true}, m.Products[1])
	out := ok("menu", "show", "--merchant", "bar")
	require.Contains(t, out, "Beer 0.3l")
	require.Contains(t, out, "21.00")

	ok("menu", "set", "--merchant", "bar", csvFile, "--json")
	m = menu.Menu{}
	require.NoError(t, json.Unmarshal([]byte(ok("menu", "show", "--merchant", "bar", "--json")), &m))
	require.Equal(t, int32(2), m.Version)
	require.Equal(t, []menu.Product{{ID: "cola", Name: "Cola", Price: 250, VATRateBP: 900, Category: "Drinks"}}, m.Products)

	_, errOut, code = loopcard("menu", "set", "--merchant", "bar", badFile)
	require.NotZero(t, code)
	require.Contains(t, errOut, "price must be a whole number of cents")
	require.Contains(t, errOut, "nothing was changed")
	_, errOut, code = loopcard("menu", "set", "--merchant", "food", jsonFile)
	require.NotZero(t, code)
	require.Contains(t, errOut, "loopcard ledger merchant")
	require.NoError(t, json.Unmarshal([]byte(ok("menu", "show", "--merchant", "bar", "--json")), &m))
	require.Equal(t, int32(2), m.Version)

	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	var sets, failed int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE outcome = 'ok'), count(*) FILTER (WHERE outcome <> 'ok')
		FROM api_audit WHERE action = 'cli menu set' AND actor = 'cli:ann'`).Scan(&sets, &failed))
	require.Equal(t, 2, sets)
	require.Equal(t, 2, failed)
}
