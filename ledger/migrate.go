package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/loopcard/loopcard/ledger/migrations"
)

// VersionTable is where the migration tool records the schema version.
const VersionTable = "public.schema_version"

// Migrate brings the database schema up to date with every migration in
// ledger/migrations: the single entry point for the schema of all of
// Loopcard. It is safe to run concurrently and again.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	defer conn.Release()
	// The migrator creates its version table before taking its own lock;
	// this lock keeps concurrent first runs apart.
	const lockID = 0x4c43_4d49_4752 // "LCMIGR"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID) //nolint:errcheck
	m, err := migrate.NewMigrator(ctx, conn.Conn(), VersionTable)
	if err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("ledger: load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("ledger: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the number of the last migration applied.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int32, error) {
	var v int32
	err := pool.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&v)
	return v, err
}
