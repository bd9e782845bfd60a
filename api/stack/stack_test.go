package stack_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/stack"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Open gives every part on the operator's own HSM and database, the schema
// migrated; NewServer builds the API on them; Close releases it all, and
// again does nothing.
func TestOpenOwnHSMAndDatabase(t *testing.T) {
	ctx := context.Background()
	uri, url := softhsm.NewTestToken(t), pgtest.NewDatabase(t)
	s, err := stack.Open(ctx, stack.Config{DataDir: t.TempDir(), HSMURI: uri, DatabaseURL: url})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	require.False(t, s.HSMCreated)
	require.Equal(t, url, s.DatabaseURL)
	require.NotNil(t, s.Batches)
	require.Nil(t, s.Server)

	// Migrated: the ledger answers, and knows no organizer yet.
	var unknown *ledger.UnknownError
	require.ErrorAs(t, s.Ledger.CheckOrganizer(ctx, 1), &unknown)
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, 1, "Org"))
	require.NoError(t, s.Ledger.CheckOrganizer(ctx, 1))
	bs, err := s.Batches.List(ctx, 1)
	require.NoError(t, err)
	require.Empty(t, bs)

	_, err = s.HSM.Init(ctx)
	require.NoError(t, err)
	require.NoError(t, s.NewServer(ctx, api.Config{}))
	require.NotNil(t, s.Server)

	require.NoError(t, s.Close())
	require.Error(t, s.Pool.Ping(ctx), "the pool is closed")
	require.NoError(t, s.Close())
}

// Without a URL the database is the embedded default: a durable
// PostgreSQL cluster in DATA_DIR/postgres, started or attached to, with
// the named database created when missing and kept, or dropped first when
// FreshDatabase asks. (The embedded SoftHSM2 token is the CLI tests': it
// cannot share a process with test tokens.)
func TestEmbeddedDatabase(t *testing.T) {
	ctx := context.Background()
	// When the test runs as root, the cluster runs as the postgres user,
	// who must be able to pass through to the data directory.
	tmp, err := os.MkdirTemp("", "lcstack-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	require.NoError(t, os.Chmod(tmp, 0o711))
	dir := filepath.Join(tmp, "data")
	cfg := stack.Config{DataDir: dir, Database: "events"}

	// A table in the named database ...
	s := stack.New(cfg)
	require.NoError(t, s.StartDatabase(ctx))
	require.True(t, strings.Contains(s.DatabaseURL, stack.PostgresDir(dir)), s.DatabaseURL)
	exec(t, s.DatabaseURL, `CREATE TABLE kept (x int)`)
	// ... is there for a second stack attached to the running cluster.
	s2 := stack.New(cfg)
	require.NoError(t, s2.StartDatabase(ctx))
	require.Equal(t, s.DatabaseURL, s2.DatabaseURL)
	exec(t, s2.DatabaseURL, `SELECT * FROM kept`)
	require.NoError(t, s2.Close())
	// Closing the attached stack left the server running.
	exec(t, s.DatabaseURL, `SELECT * FROM kept`)
	require.NoError(t, s.Close())

	// A stack that starts the cluster again finds the table; a fresh one
	// does not.
	s = stack.New(cfg)
	require.NoError(t, s.StartDatabase(ctx))
	exec(t, s.DatabaseURL, `SELECT * FROM kept`)
	require.NoError(t, s.Close())
	cfg.FreshDatabase = true
	s = stack.New(cfg)
	t.Cleanup(func() { s.Close() })
	require.NoError(t, s.OpenDatabase(ctx))
	_, err = s.Pool.Exec(ctx, `SELECT * FROM kept`)
	require.ErrorContains(t, err, `relation "kept" does not exist`)
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, 1, "Org"), "migrated")
	if os.Geteuid() == 0 {
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.NotZero(t, fi.Mode().Perm()&0o001, "the postgres user passes through the data directory")
	}
	require.NoError(t, s.Close())

}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}
