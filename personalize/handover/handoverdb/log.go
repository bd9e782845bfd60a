package handoverdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/loopcard/loopcard/personalize/handover"
	"golang.org/x/mod/sumdb/tlog"
)

// Config is what Open needs.
type Config struct {
	// Org is the organizer whose log this is.
	Org int64
	// Origin names the log in its checkpoints; empty means
	// handover.DefaultOrigin(Org).
	// It is recorded with the log on first use and may not change.
	Origin string
	// HQ signs HQ's entries and every checkpoint: hq-sign, Ed25519, named
	// as the origin (see NewHQSigner).
	HQ *handover.Signer
	// Logger receives an audit record for every append; nil discards them.
	Logger *slog.Logger
	// Now returns the time entries are made at; nil means time.Now.
	Now func() time.Time
}

// Log is one organizer's handover log in PostgreSQL. It is safe for
// concurrent use; appends are serialised by the database.
type Log struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger

	// mu guards the tally of the entries up to tallySize, which Append
	// brings up to date under the log's row lock and checks new entries
	// against; nil after a refused append (rebuilt from the log).
	mu        sync.Mutex
	tally     *handover.Tally
	tallySize int64
	signed    map[tlog.Hash]int64 // leaf -> index of the signed entries
}

// ErrDuplicate: a signed entry that is already in the log (a replay).
var ErrDuplicate = errors.New("entry already in the log")

// ErrOrigin: the log exists under another origin.
var ErrOrigin = errors.New("handover log has another origin")

// Open returns the log of cfg.Org, creating its row on first use. The
// schema must be migrated (ledger.Migrate). Errors wrap ErrOrigin.
func Open(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Log, error) {
	if cfg.Org < 1 {
		return nil, fmt.Errorf("handover: organizer %d", cfg.Org)
	}
	if cfg.HQ == nil {
		return nil, errors.New("handover: no HQ signer")
	}
	if cfg.Origin == "" {
		cfg.Origin = handover.DefaultOrigin(cfg.Org)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Log{pool: pool, cfg: cfg, log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO handover_logs (org_id, origin) VALUES ($1, $2) ON CONFLICT DO NOTHING`, cfg.Org, cfg.Origin); err != nil {
		return nil, fmt.Errorf("handover: open log: %w", err)
	}
	var origin string
	if err := pool.QueryRow(ctx, `SELECT origin FROM handover_logs WHERE org_id = $1`, cfg.Org).Scan(&origin); err != nil {
		return nil, fmt.Errorf("handover: open log: %w", err)
	}
	if origin != cfg.Origin {
		return nil, fmt.Errorf("%w: organizer %d's log is %q, not %q", ErrOrigin, cfg.Org, origin, cfg.Origin)
	}
	return l, nil
}

// Org is the organizer.
func (l *Log) Org() int64 { return l.cfg.Org }

// Origin is the log's origin.
func (l *Log) Origin() string { return l.cfg.Origin }

// HQ is HQ's signer.
func (l *Log) HQ() *handover.Signer { return l.cfg.HQ }

// Now is the time new entries are made at, in UTC.
func (l *Log) Now() time.Time { return l.cfg.Now().UTC() }

// Appended is the result of an append.
type Appended struct {
	// First is the index of the first entry appended.
	First int64
	// Checkpoint is the new tree head, and Note its signed note.
	Checkpoint handover.Checkpoint
	Note       []byte
}

// Append checks entries (see Checker: known signers, allowed, signatures,
// seals complete within entries; no signed entry twice; and Tally: counts
// and card states after the entries already in the log) and appends them in one transaction with
// a new checkpoint signed by HQ. Nothing is appended when any check fails.
// Errors wrap ErrMalformed or ErrLogCounts, or are *EntryError (index in
// the log as it would have been) wrapping ErrDuplicate or the Checker and
// Tally errors.
func (l *Log) Append(ctx context.Context, entries ...handover.Entry) (res Appended, err error) {
	return l.AppendWith(ctx, nil, entries...)
}

// AppendWith is Append that also runs also, when it is not nil, in the
// append's transaction after the entries are written: what another part
// records because of the entries (a store's stock, for a receipt) commits
// with them or not at all.
func (l *Log) AppendWith(ctx context.Context, also func(context.Context, pgx.Tx) error, entries ...handover.Entry) (res Appended, err error) {
	defer func() {
		attrs := []any{slog.Int64("org", l.cfg.Org), slog.Int("entries", len(entries)), slog.Int64("first", res.First),
			slog.Int64("size", res.Checkpoint.Size)}
		if len(entries) > 0 {
			attrs = append(attrs, slog.String("type", string(entries[0].Type)), slog.String("signer", entries[0].Signer))
		}
		if err != nil {
			l.log.Warn("handover.append", append(attrs, slog.String("outcome", "refused"), slog.String("error", err.Error()))...)
			return
		}
		l.log.Info("handover.append", append(attrs, slog.String("outcome", "ok"))...)
	}()
	if len(entries) == 0 {
		return Appended{}, fmt.Errorf("%w: nothing to append", handover.ErrMalformed)
	}
	data := make([][]byte, len(entries))
	for i := range entries {
		if entries[i].Org != l.cfg.Org {
			return Appended{}, fmt.Errorf("%w: entry for organizer %d in organizer %d's log", handover.ErrMalformed, entries[i].Org, l.cfg.Org)
		}
		if data[i], err = entries[i].Marshal(); err != nil {
			return Appended{}, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err = pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		var size int64
		if err := tx.QueryRow(ctx, `SELECT size FROM handover_logs WHERE org_id = $1 FOR UPDATE`, l.cfg.Org).Scan(&size); err != nil {
			return fmt.Errorf("handover: lock log: %w", err)
		}
		c := handover.NewChecker(l.cfg.HQ.PublicKey(), size)
		if err := loadStoreKeys(ctx, tx, l.cfg.Org, c); err != nil {
			return err
		}
		if err := l.catchUp(ctx, tx, size); err != nil {
			return err
		}
		r := &dbHashes{ctx: ctx, tx: tx, org: l.cfg.Org, new: map[int64]tlog.Hash{}}
		var rows, hashRows [][]any
		var keyRows [][]any
		for i, e := range entries {
			leaf := tlog.RecordHash(data[i])
			sc, err := c.Add(e, leaf)
			if err != nil {
				return err
			}
			if sc != nil {
				if err := sc.Verify(); err != nil {
					return &handover.EntryError{Index: size + int64(i), Err: err}
				}
			}
			idx := size + int64(i)
			if e.Sig != "" {
				if first, dup := l.signed[leaf]; dup {
					return &handover.EntryError{Index: idx, Err: fmt.Errorf("%w: it is entry %d", ErrDuplicate, first)}
				}
				l.signed[leaf] = idx
			}
			if err := l.tally.Add(idx, e); err != nil {
				return err
			}
			hs, err := tlog.StoredHashesForRecordHash(idx, leaf, r)
			if err != nil {
				return fmt.Errorf("handover: hash entry %d: %w", idx, err)
			}
			first := tlog.StoredHashIndex(0, idx)
			for j, h := range hs {
				r.new[first+int64(j)] = h
				hashRows = append(hashRows, []any{l.cfg.Org, first + int64(j), h[:]})
			}
			rows = append(rows, []any{l.cfg.Org, idx, data[i]})
			if e.Type == handover.TypeKeyEnrolled {
				k, _ := handover.ParseVkey(e.Key) // checked by Add
				keyRows = append(keyRows, []any{l.cfg.Org, k.ID(), e.Store, e.Key, idx})
			}
		}
		if err := c.Finish(); err != nil {
			return err
		}
		n := size + int64(len(entries))
		root, err := tlog.TreeHash(n, r)
		if err != nil {
			return fmt.Errorf("handover: tree hash: %w", err)
		}
		cp := handover.Checkpoint{Origin: l.cfg.Origin, Size: n, Root: root}
		signed, err := handover.SignCheckpoint(cp, l.cfg.HQ)
		if err != nil {
			return fmt.Errorf("handover: sign checkpoint: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"handover_entries"}, []string{"org_id", "idx", "entry"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("handover: store entries: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"handover_hashes"}, []string{"org_id", "sidx", "hash"}, pgx.CopyFromRows(hashRows)); err != nil {
			return fmt.Errorf("handover: store hashes: %w", err)
		}
		if len(keyRows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"handover_store_keys"}, []string{"org_id", "key_id", "store_id", "vkey", "idx"}, pgx.CopyFromRows(keyRows)); err != nil {
				return fmt.Errorf("handover: store keys: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO handover_checkpoints (org_id, size, note) VALUES ($1, $2, $3)`, l.cfg.Org, n, signed); err != nil {
			return fmt.Errorf("handover: store checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE handover_logs SET size = $2 WHERE org_id = $1`, l.cfg.Org, n); err != nil {
			return fmt.Errorf("handover: log size: %w", err)
		}
		if also != nil {
			if err := also(ctx, tx); err != nil {
				return err
			}
		}
		res = Appended{First: size, Checkpoint: cp, Note: signed}
		return nil
	})
	if err != nil {
		l.tally = nil // it may hold some of the refused entries
		return Appended{}, err
	}
	l.tallySize = res.Checkpoint.Size
	return res, nil
}

// AppendReceiving is AppendWith whose also learns the handovers that the
// receipts among entries close (with their runs of cards, if any) and
// the log index of the first entry appended, so that what it records of
// a receipt (a store's stock) knows which cards it received.
func (l *Log) AppendReceiving(ctx context.Context, also func(ctx context.Context, tx pgx.Tx, first int64, received []handover.Handover) error,
	entries ...handover.Entry) (Appended, error) {
	return l.AppendWith(ctx, func(ctx context.Context, tx pgx.Tx) error {
		// Under the log's lock, the tally holds the new entries and
		// tallySize is still the size before them.
		first := l.tallySize
		var got []handover.Handover
		for _, h := range l.tally.Handovers() {
			if h.Received >= first {
				got = append(got, h)
			}
		}
		return also(ctx, tx, first, got)
	}, entries...)
}

// ErrLogCounts: the entries already in the log do not add up, so nothing
// more can be checked against them. Only a changed database does that:
// run an audit.
var ErrLogCounts = errors.New("the entries in the log do not add up")

// catchUp brings the tally up to the log's size, reading the entries other
// processes appended since (all of them after a refused append or on first
// use).
func (l *Log) catchUp(ctx context.Context, tx pgx.Tx, size int64) error {
	if l.tally == nil || l.tallySize > size {
		l.tally, l.tallySize, l.signed = handover.NewTally(), 0, map[tlog.Hash]int64{}
	}
	if l.tallySize == size {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT idx, entry FROM handover_entries WHERE org_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`,
		l.cfg.Org, l.tallySize, size)
	if err != nil {
		return fmt.Errorf("handover: read log: %w", err)
	}
	defer rows.Close()
	want := l.tallySize
	for rows.Next() {
		var idx int64
		var b []byte
		if err := rows.Scan(&idx, &b); err != nil {
			return fmt.Errorf("handover: read log: %w", err)
		}
		if idx != want {
			l.tally = nil
			return fmt.Errorf("%w: entry %d is missing", ErrLogCounts, want)
		}
		e, err := handover.ParseEntry(b)
		if err == nil {
			err = l.tally.Add(idx, e)
		}
		if err == nil && e.Sig != "" {
			l.signed[tlog.RecordHash(b)] = idx
		}
		if err != nil {
			l.tally = nil
			return fmt.Errorf("%w: %w", ErrLogCounts, err)
		}
		want++
	}
	if err := rows.Err(); err != nil {
		l.tally = nil
		return fmt.Errorf("handover: read log: %w", err)
	}
	if want != size {
		l.tally = nil
		return fmt.Errorf("%w: entry %d is missing", ErrLogCounts, want)
	}
	l.tallySize = size
	return nil
}

// loadStoreKeys gives c the store keys enrolled in the log.
func loadStoreKeys(ctx context.Context, q pgx.Tx, org int64, c *handover.Checker) error {
	rows, err := q.Query(ctx, `SELECT store_id, vkey FROM handover_store_keys WHERE org_id = $1`, org)
	if err != nil {
		return fmt.Errorf("handover: store keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var store, vkey string
		if err := rows.Scan(&store, &vkey); err != nil {
			return fmt.Errorf("handover: store keys: %w", err)
		}
		k, err := handover.ParseVkey(vkey)
		if err != nil {
			return fmt.Errorf("handover: stored key of store %s: %w", store, err)
		}
		c.AddStoreKey(store, k)
	}
	return rows.Err()
}

// dbHashes reads stored hashes from the database, and those of the append
// in progress from memory.
type dbHashes struct {
	ctx context.Context
	tx  pgx.Tx
	org int64
	new map[int64]tlog.Hash
}

func (r *dbHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var want []int64
	for i, x := range indexes {
		if h, ok := r.new[x]; ok {
			out[i] = h
		} else {
			want = append(want, x)
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	rows, err := r.tx.Query(r.ctx, `SELECT sidx, hash FROM handover_hashes WHERE org_id = $1 AND sidx = ANY($2)`, r.org, want)
	if err != nil {
		return nil, err
	}
	got := map[int64]tlog.Hash{}
	for rows.Next() {
		var x int64
		var h []byte
		if err := rows.Scan(&x, &h); err != nil {
			rows.Close()
			return nil, err
		}
		if len(h) != tlog.HashSize {
			rows.Close()
			return nil, fmt.Errorf("stored hash %d has %d bytes", x, len(h))
		}
		got[x] = tlog.Hash(h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i, x := range indexes {
		if _, ok := r.new[x]; ok {
			continue
		}
		h, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("stored hash %d missing", x)
		}
		r.new[x] = h // cache: later entries of this append read it again
		out[i] = h
	}
	return out, nil
}
