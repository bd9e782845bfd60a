package migrations_test

import (
	"context"
	"fmt"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
)

// TestOlderBinaryOnNewerSchema: during a rolling upgrade a newer binary
// migrates the database while the old one still runs beside it; the old
// one, restarted, must start (Up leaves the newer schema as it is) rather
// than refuse a version it does not know.
func TestOlderBinaryOnNewerSchema(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	newer := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	last := 0
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%03d_", &n); err == nil {
			last = max(last, n)
		}
		b, err := fs.ReadFile(migrations.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		newer[e.Name()] = &fstest.MapFile{Data: b}
	}
	next := fmt.Sprintf("%03d_newer.sql", last+1)
	newer[next] = &fstest.MapFile{Data: []byte("ALTER TABLE topups ADD COLUMN newer_note text;")}
	if err := migrations.UpFS(ctx, pool, newer); err != nil {
		t.Fatalf("the newer binary: %v", err)
	}
	if err := migrations.UpFS(ctx, pool, migrations.FS); err != nil {
		t.Fatalf("the older binary on the newer schema: %v", err)
	}
	var v int32
	if err := pool.QueryRow(ctx, "SELECT version FROM "+migrations.VersionTable).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != int32(last+1) {
		t.Fatalf("schema version %d, want %d: the older binary must leave it", v, last+1)
	}
}
