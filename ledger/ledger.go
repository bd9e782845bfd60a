package ledger

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Errors callers branch on.
var (
	ErrNotFound          = errors.New("ledger: not found")
	ErrExists            = errors.New("ledger: already exists")
	ErrUnbalanced        = errors.New("ledger: postings do not balance")
	ErrInsufficientFunds = errors.New("ledger: balance would go below its floor")
	ErrCardBlocked       = errors.New("ledger: card is blocked")
	ErrInvalid           = errors.New("ledger: invalid request")
)

// Options configure a Ledger.
type Options struct {
	// Logger receives alerts and notable events; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// VerifyWorkers is how many goroutines verify signatures of a batch;
	// 0 means GOMAXPROCS.
	VerifyWorkers int
	// SubmitFlights is how many coalesced batches of Submit may be in
	// flight at once; 0 means DefaultSubmitFlights.
	SubmitFlights int
	// Sealer seals refund payout details (holder name, IBAN, BIC) before
	// they are stored and opens them for ExportPayouts: the HSM's envelope
	// encryption (*keys.HSM). Without it, RequestRefund and exporting sealed
	// refunds fail with ErrNoSealer.
	Sealer Sealer
}

// Sealer is envelope encryption under the HSM's data-kek (keys.HSM).
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (*keys.Envelope, error)
	Unseal(ctx context.Context, env *keys.Envelope, aad []byte) ([]byte, error)
}

// Ledger is the money ledger of every organizer in one database.
type Ledger struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	now     func() time.Time
	workers int
	sealer  Sealer
	// copyMinRows is the smallest number of rows written with COPY instead
	// of INSERT (see copyrows.go); tests lower it to cover both.
	copyMinRows int

	termMu    sync.Mutex
	termCache map[termKey]cachedTerminal

	submits *submitQueue

	cardAccts cardAccounts // the account of each card met (cardlock.go)
}

// terminalCacheTTL is how long an active terminal's key is used without
// looking it up again: a revocation made through another Ledger (another
// API process) takes effect within this time; one made through this Ledger
// at once.
const terminalCacheTTL = 2 * time.Second

type termKey struct {
	org int64
	id  string
}

type cachedTerminal struct {
	info    terminalInfo
	fetched time.Time
}

// New returns a Ledger on pool. The schema must be migrated (see Migrate).
func New(pool *pgxpool.Pool, opts Options) *Ledger {
	l := &Ledger{pool: pool, log: opts.Logger, now: opts.Now, workers: opts.VerifyWorkers,
		sealer:      opts.Sealer,
		copyMinRows: defaultCopyMinRows,
		termCache:   map[termKey]cachedTerminal{}}
	if l.log == nil {
		l.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.workers <= 0 {
		l.workers = runtime.GOMAXPROCS(0)
	}
	flights := opts.SubmitFlights
	if flights <= 0 {
		flights = DefaultSubmitFlights
	}
	l.submits = newSubmitQueue(flights)
	return l
}

// Pool returns the connection pool the ledger uses.
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }

// maxAttempts bounds retries of a transaction that lost a race
// (serialization failure, deadlock, or a concurrent insert of the same key).
const maxAttempts = 8

// inTx runs fn in a database transaction, retrying it when it lost a race
// with a concurrent one. fn must be safe to run again from the start.
func (l *Ledger) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = pgx.BeginFunc(ctx, l.pool, fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		l.log.Debug("ledger: retrying transaction", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505":
		return true
	}
	return false
}

// dbError maps constraint violations raised by the schema to the package's
// sentinel errors.
func dbError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.ConstraintName {
		case "balance_floor":
			return fmt.Errorf("%w: %w", ErrInsufficientFunds, err)
		case "postings_balance":
			return fmt.Errorf("%w: %w", ErrUnbalanced, err)
		}
	}
	return err
}

// newID returns a UUIDv7 for a ledger-made transaction or record.
func (l *Ledger) newID() txid.ID {
	var r [10]byte
	_, _ = rand.Read(r[:])
	return txid.New(l.now(), r[:])
}
