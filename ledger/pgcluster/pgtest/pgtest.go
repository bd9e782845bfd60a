// Package pgtest gives each test a fresh database on a real PostgreSQL
// server, started once per test binary by pgcluster.
//
// A package that uses it calls pgtest.Main from TestMain so the server stops
// when the tests end (or calls Stop after m.Run where its TestMain must be
// another wrapper):
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) { url := pgtest.NewDatabase(t); ... }
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/pgcluster"
)

var (
	mu      sync.Mutex
	shared  *pgcluster.Cluster
	tmpDir  string
	started bool
	dbSeq   atomic.Int64
)

// Main runs the tests and then stops the shared server, if one was started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the shared server, if one was started: for a TestMain that
// cannot use Main (for example one that testscript.Main runs).
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		_ = shared.Stop()
		shared = nil
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
		tmpDir = ""
	}
}

// Cluster returns the test binary's shared cluster, starting it on first use.
// The test fails, naming the missing package, when PostgreSQL is not installed.
func Cluster(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		return shared
	}
	if started {
		t.Fatal("pgtest: the shared PostgreSQL failed to start earlier in this test binary")
	}
	started = true
	// Not t.TempDir: that lives under a 0700 directory the postgres user
	// cannot enter when tests run as root, and its path may be too long for
	// a unix socket.
	dir, err := os.MkdirTemp("", "lcpg-")
	if err != nil {
		t.Fatal(err)
	}
	tmpDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	shared = c
	return c
}

// NewDatabase creates an empty database for this test and returns its URL.
// The database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := Cluster(t)
	name := fmt.Sprintf("t%d_%s", dbSeq.Add(1), sanitize(t.Name()))
	ctx := context.Background()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dropDatabase(c, name)
	})
	return c.URL(name)
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

func dropDatabase(c *pgcluster.Cluster, name string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}
