package pgcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func tempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lcpgt-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func query(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// One cluster's life: init, write, stop, restart with the data kept, attach
// to a running server without owning it, crash and recover.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)

	c, err := Start(ctx, Options{Dir: dir, Durable: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	require.Equal(t, "on", query(t, c.URL("postgres"), "SHOW fsync"))
	require.Equal(t, "", query(t, c.URL("postgres"), "SHOW listen_addresses"), "no TCP port")
	require.NoError(t, c.CreateDatabase(ctx, "ledger"))
	require.NoError(t, c.CreateDatabase(ctx, "ledger"), "idempotent")
	execSQL(t, c.URL("ledger"), "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")

	// A second Start on the same directory attaches; its Stop leaves the server up.
	attached, err := Start(ctx, Options{Dir: dir})
	require.NoError(t, err)
	require.NoError(t, attached.Stop())
	require.Equal(t, "42", query(t, c.URL("ledger"), "SELECT v::text FROM t"))

	require.NoError(t, c.Stop())
	_, err = pgx.Connect(ctx, c.URL("ledger"))
	require.Error(t, err, "server is down after Stop")

	c, err = Start(ctx, Options{Dir: dir, Durable: true})
	require.NoError(t, err)
	require.Equal(t, "42", query(t, c.URL("ledger"), "SELECT v::text FROM t"))

	// A committed row survives SIGKILL of the server.
	execSQL(t, c.URL("ledger"), "INSERT INTO t VALUES (43)")
	c.Kill()
	c, err = Start(ctx, Options{Dir: dir, Durable: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	require.Equal(t, "2", query(t, c.URL("ledger"), "SELECT count(*)::text FROM t"))
}

func TestFastSettings(t *testing.T) {
	c, err := Start(context.Background(), Options{Dir: tempDir(t), Settings: map[string]string{"work_mem": "8MB"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop() })
	require.Equal(t, "off", query(t, c.URL("postgres"), "SHOW fsync"))
	require.Equal(t, "8MB", query(t, c.URL("postgres"), "SHOW work_mem"))
}

func TestBadDirectory(t *testing.T) {
	_, err := Start(context.Background(), Options{})
	require.ErrorContains(t, err, "no directory")

	long := filepath.Join(os.TempDir(), strings.Repeat("x", 120))
	_, err = Start(context.Background(), Options{Dir: long})
	require.ErrorContains(t, err, "too long for a unix socket")
	require.NoDirExists(t, long, "nothing created for a refused directory")
}

// A data directory under a parent closed to others (such as /root) cannot
// be used by the postgres user: the error says so and what to do.
func TestUnreachableParent(t *testing.T) {
	closed := tempDir(t)
	require.NoError(t, os.Chmod(closed, 0o700))
	me := uint32(os.Getuid())
	stranger := &syscall.Credential{Uid: me + 12345, Gid: uint32(os.Getgid()) + 12345}
	err := checkReachable(filepath.Join(closed, "pg"), stranger)
	require.ErrorContains(t, err, "cannot enter "+closed)
	require.ErrorContains(t, err, "choose a data directory outside it")

	require.NoError(t, os.Chmod(closed, 0o711))
	require.NoError(t, checkReachable(filepath.Join(closed, "pg"), stranger))
}
