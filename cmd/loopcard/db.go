package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster"
)

var embeddedNotice sync.Once

// openDatabase connects to --database-url or, when it is empty, starts (or
// attaches to) the embedded PostgreSQL under DATA_DIR/postgres with durable
// settings and database "loopcard". It brings the schema up to date and
// returns a pool and a cleanup that closes the pool and stops a server this
// process started.
func openDatabase(c *cli.Context) (*pgxpool.Pool, func(), error) {
	ctx := c.Context
	url, stop, err := startDatabase(c)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		stop()
		return nil, nil, fmt.Errorf("database: %w", err)
	}
	if err := ledger.Migrate(ctx, pool); err != nil {
		pool.Close()
		stop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); stop() }, nil
}

// startDatabase returns the URL of --database-url or of the embedded
// database (started if needed), without touching its schema, and the
// function that stops a server this process started.
func startDatabase(c *cli.Context) (string, func(), error) {
	ctx := c.Context
	cfg := getConfig(c)
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, func() {}, nil
	}
	dir := filepath.Join(cfg.DataDir, "postgres")
	if err := dataDirEnterable(cfg.DataDir); err != nil {
		return "", nil, err
	}
	embeddedNotice.Do(func() {
		fmt.Fprintf(c.App.ErrWriter, "loopcard: using the embedded PostgreSQL in %s (set --database-url to use another)\n", dir)
	})
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true, Logger: logger(c)})
	if err != nil {
		return "", nil, fmt.Errorf("embedded database: %w", err)
	}
	stop := func() {
		if err := cl.Stop(); err != nil {
			logger(c).Warn("embedded database did not stop cleanly", "err", err)
		}
	}
	if err := cl.CreateDatabase(ctx, "loopcard"); err != nil {
		stop()
		return "", nil, fmt.Errorf("embedded database: %w", err)
	}
	return cl.URL("loopcard"), stop, nil
}

// dataDirEnterable makes sure that, when loopcard runs as root, the postgres
// user can pass through the data directory to the embedded cluster inside it:
// the directory gets o+x (enter, not list). What lies inside keeps its own
// modes: the SoftHSM2 token and TLS keys are 0700/0600.
func dataDirEnterable(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if fi.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	return nil
}
