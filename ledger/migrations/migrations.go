// Package migrations holds the schema of the Loopcard database: the numbered
// SQL migrations (tern format: NNN_name.sql, applied in order, each in its
// own transaction), Up that applies them, the table of which package owns
// each table (Owner) and schema.sql, the schema as the migrations leave it,
// kept true by TestSchema. Every table's primary key starts with org_id so
// that the schema can be sharded by organizer. New tables of any part of
// Loopcard are added here as the next numbered file, never by editing an
// applied one, and given their owner in owners.go; see docs/schema.md.
package migrations

//go:generate go test -run ^TestSchema$ -update

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS

// VersionTable is where the migration tool records the schema version.
const VersionTable = "public.schema_version"

// Up brings the database schema up to date with every migration in FS: the
// single entry point for the schema of all of Loopcard (ledger.Migrate
// calls it). It is safe to run concurrently and again, and by an older
// binary on a database a newer one migrated (it leaves it as it is).
//
// A binary built with the tag loopcard_upgradetest applies one more, from
// testdata: the new binary of the upgrade test (upgradetest.go).
func Up(ctx context.Context, pool *pgxpool.Pool) error {
	fsys, err := migrationsFS()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return UpFS(ctx, pool, fsys)
}

// UpFS is Up with the migrations of fsys: a test of an upgrade adds a
// migration of its own to FS's.
func UpFS(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Release()
	// The migrator creates its version table before taking its own lock;
	// this lock keeps concurrent first runs apart.
	const lockID = 0x4c43_4d49_4752 // "LCMIGR"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID) //nolint:errcheck
	m, err := migrate.NewMigrator(ctx, conn.Conn(), VersionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(fsys); err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	// A newer binary migrated the database: during a rolling upgrade the
	// old binary still runs beside it (and may restart), on a schema that
	// migrations applied during an event only expand. The migrator would
	// refuse it.
	v, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if v > int32(len(m.Migrations)) {
		return nil
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
