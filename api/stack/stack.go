// Package stack opens a Loopcard installation's parts in the one order they
// depend on — the HSM, the database and its schema, the ledger and batch
// store, the API server — and closes them in reverse. `loopcard serve`, the
// CLI's other commands and package api/sim all set up through it.
//
// Each part is the operator's own or an embedded default under the data
// directory: the HSM named by a PKCS#11 URI or the SoftHSM2 token of package
// softhsm, the database named by a URL or the durable PostgreSQL cluster of
// package ledger/pgcluster in DATA_DIR/postgres.
package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/softhsm"
)

// DefaultDatabase is the database made in the embedded cluster when
// Config.Database is empty: the one `loopcard serve` and the CLI use.
const DefaultDatabase = "loopcard"

// Config names the parts of an installation.
type Config struct {
	// DataDir holds the embedded defaults: the SoftHSM2 token and the
	// PostgreSQL cluster (see PostgresDir).
	DataDir string
	// HSMURI is an RFC 7512 PKCS#11 URI; empty: the embedded SoftHSM2 token
	// under DataDir, made on first use.
	HSMURI string
	// DatabaseURL is a PostgreSQL URL; empty: the embedded cluster under
	// DataDir (started, or attached to when it runs already) with
	// database Database in it.
	DatabaseURL string
	// Database is the database of the embedded cluster, created when
	// missing; empty means DefaultDatabase. Unused with DatabaseURL.
	Database string
	// FreshDatabase drops Database of the embedded cluster first, so that
	// every start begins empty (the simulator). Unused with DatabaseURL.
	FreshDatabase bool
	// Logger receives the parts' audit records and events; nil discards
	// them.
	Logger *slog.Logger
}

// PostgresDir is the embedded cluster's directory under dataDir.
func PostgresDir(dataDir string) string { return filepath.Join(dataDir, "postgres") }

// Stack is an installation's open parts. Fields are nil until the method
// that opens them has run.
type Stack struct {
	// HSM is the key store; HSMCreated reports that OpenHSM has just made
	// the embedded token (the CLI says so once).
	HSM        *keys.HSM
	HSMCreated bool
	// DatabaseURL is the database's URL (StartDatabase).
	DatabaseURL string
	// Pool, Ledger and Batches are the migrated database and the stores
	// on it (OpenDatabase). The ledger seals refunds with HSM when the HSM
	// was opened first.
	Pool    *pgxpool.Pool
	Ledger  *ledger.Ledger
	Batches *batch.Batches
	// Server is the API (NewServer).
	Server *api.Server

	cfg     Config
	log     *slog.Logger
	closers []func() error
}

// New returns a Stack of cfg with nothing open yet.
func New(cfg Config) *Stack {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	return &Stack{cfg: cfg, log: log}
}

// Open opens the HSM and the database (OpenHSM, OpenDatabase); on error
// it closes what it opened.
func Open(ctx context.Context, cfg Config) (*Stack, error) {
	s := New(cfg)
	if err := s.OpenHSM(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.OpenDatabase(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// onClose adds f to what Close runs, in reverse order of adding.
func (s *Stack) onClose(f func() error) { s.closers = append(s.closers, f) }

// Close releases everything opened, in reverse order, and returns every
// error it met. It may be called again.
func (s *Stack) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// OpenHSM opens the HSM of Config.HSMURI, or the embedded SoftHSM2 token
// under the data directory, made on first use (then HSMCreated is true).
// It does nothing when the HSM is open. Errors are those of keys.Open, or
// wrap softhsm.ErrNotInstalled.
func (s *Stack) OpenHSM() error {
	if s.HSM != nil {
		return nil
	}
	uri := s.cfg.HSMURI
	if uri == "" {
		u, created, err := softhsm.Embedded(s.cfg.DataDir)
		if err != nil {
			return fmt.Errorf("embedded HSM: %w", err)
		}
		uri, s.HSMCreated = u, created
	}
	h, err := keys.Open(uri, keys.Options{Logger: s.log})
	if err != nil {
		return err
	}
	s.HSM = h
	s.onClose(h.Close)
	return nil
}

// StartDatabase sets DatabaseURL to Config.DatabaseURL or to the embedded
// cluster's database, starting the cluster (durable settings) or attaching
// to it and creating the database when missing. It leaves the schema
// alone: backup and restore want the database as it is. A cluster this
// Stack started is stopped by Close. It does nothing when the URL is set.
// Errors wrap pgcluster.ErrNotInstalled when PostgreSQL is missing.
func (s *Stack) StartDatabase(ctx context.Context) error {
	if s.DatabaseURL != "" {
		return nil
	}
	if s.cfg.DatabaseURL != "" {
		s.DatabaseURL = s.cfg.DatabaseURL
		return nil
	}
	if err := PrepareDataDir(s.cfg.DataDir); err != nil {
		return err
	}
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: PostgresDir(s.cfg.DataDir), Durable: true, Logger: s.log})
	if err != nil {
		return fmt.Errorf("embedded database: %w", err)
	}
	s.onClose(func() error {
		if err := cl.Stop(); err != nil {
			s.log.Warn("embedded database did not stop cleanly", "err", err)
			return err
		}
		return nil
	})
	if s.cfg.FreshDatabase {
		err = dropDatabase(ctx, cl.URL("postgres"), s.cfg.Database)
	}
	if err == nil {
		err = cl.CreateDatabase(ctx, s.cfg.Database)
	}
	if err != nil {
		return fmt.Errorf("embedded database: %w", err)
	}
	s.DatabaseURL = cl.URL(s.cfg.Database)
	return nil
}

// dropDatabase drops database name, whoever is connected to it.
func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	return err
}

// OpenDatabase starts the database (StartDatabase), connects, brings the
// schema up to date (ledger.Migrate) and sets Pool, Ledger and Batches.
// It does nothing when the pool is open.
func (s *Stack) OpenDatabase(ctx context.Context) error {
	if s.Pool != nil {
		return nil
	}
	if err := s.StartDatabase(ctx); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, s.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	s.onClose(func() error { pool.Close(); return nil })
	if err := pool.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	if err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	opts := ledger.Options{Logger: s.log}
	if s.HSM != nil {
		opts.Sealer = s.HSM
	}
	s.Pool, s.Ledger, s.Batches = pool, ledger.New(pool, opts), batch.NewBatches(pool)
	return nil
}

// NewServer opens the HSM and the database where not yet open and sets
// Server to the API on them. cfg's Ledger, Batches, HSM and Logger are
// filled in where unset; without HQSign, hq-sign is taken from the HSM,
// and when it is missing (keys not initialised) the custody routes answer
// 503 until `loopcard keys init`, which is logged.
func (s *Stack) NewServer(ctx context.Context, cfg api.Config) error {
	if err := s.OpenHSM(); err != nil {
		return err
	}
	if err := s.OpenDatabase(ctx); err != nil {
		return err
	}
	if cfg.Ledger == nil {
		cfg.Ledger = s.Ledger
	}
	if cfg.Batches == nil {
		cfg.Batches = s.Batches
	}
	if cfg.Pool == nil {
		cfg.Pool = s.Pool
	}
	if cfg.HSM == nil {
		cfg.HSM = s.HSM
	}
	if cfg.Logger == nil {
		cfg.Logger = s.log
	}
	if cfg.HQSign == nil {
		if sig, err := s.HSM.Signer(ctx, keys.Label{Name: keys.HQSign}); err == nil {
			cfg.HQSign = sig
		} else {
			s.log.Warn("no hq-sign in the HSM: custody log routes are off until `loopcard keys init`", "err", err)
		}
	}
	srv, err := api.New(cfg)
	if err != nil {
		return err
	}
	s.Server = srv
	return nil
}

// PrepareDataDir makes sure that, when loopcard runs as root, the postgres
// user can pass through dir to the embedded cluster inside it: dir is
// created when missing and gets o+x (enter, not list). What lies inside
// keeps its own modes: the SoftHSM2 token and TLS keys are 0700/0600. For
// any other user it does nothing.
func PrepareDataDir(dir string) error {
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
