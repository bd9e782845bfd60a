package ledger

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger/migrations"
)

// VersionTable is where the migration tool records the schema version.
const VersionTable = migrations.VersionTable

// Migrate brings the database schema up to date with every migration in
// ledger/migrations (migrations.Up): the schema of all of Loopcard, not only
// the ledger's. It is safe to run concurrently and again.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := migrations.Up(ctx, pool); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// SchemaVersion returns the number of the last migration applied.
func SchemaVersion(ctx context.Context, pool *pgxpool.Pool) (int32, error) {
	var v int32
	err := pool.QueryRow(ctx, "SELECT version FROM "+VersionTable).Scan(&v)
	return v, err
}
