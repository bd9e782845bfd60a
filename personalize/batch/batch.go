// Package batch keeps card batches and their cards in PostgreSQL: a batch is
// N cards of one event with one card layout; each card reserves a slot with
// its UID before the station writes to it and is marked done, with the hash
// of its QR token and its PIN verification value, once it was verified. The
// tables are created by the project's migrations (ledger/migrations).
package batch

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/personalize"
)

var (
	// ErrNotFound: no such batch, or no such finished card.
	ErrNotFound = errors.New("batch not found")
	// ErrFull: every slot of the batch is taken.
	ErrFull = errors.New("batch is full")
	// ErrInvalid: bad arguments, such as a count out of range.
	ErrInvalid = errors.New("invalid batch")
	// ErrNotReserved: Finish for a slot that is not reserved by that card.
	ErrNotReserved = errors.New("card slot is not reserved by this card")
)

// OtherBatchError says a card already belongs to another batch.
type OtherBatchError struct {
	BatchNo int64
	Slot    int
	Done    bool
}

func (e *OtherBatchError) Error() string {
	state := "reserved for"
	if e.Done {
		state = "personalized in"
	}
	return fmt.Sprintf("card already %s batch %d (slot %d)", state, e.BatchNo, e.Slot)
}

// Status of a batch or a card slot.
const (
	StatusOpen     = "open"
	StatusComplete = "complete"
	StatusReserved = "reserved"
	StatusDone     = "done"
)

// Batch is one batch with its progress.
type Batch struct {
	OrgID       int64              `json:"org_id"`
	No          int64              `json:"batch"`
	Event       string             `json:"event"`
	Count       int                `json:"count"`
	Layout      personalize.Layout `json:"layout"`
	Status      string             `json:"status"`
	Done        int                `json:"done"`
	Reserved    int                `json:"reserved"`
	KeyVersions map[string]int     `json:"key_versions,omitempty"`
	CreatedAt   time.Time          `json:"created_at"`
	CompletedAt *time.Time         `json:"completed_at,omitempty"`
}

// Card is one slot of a batch.
type Card struct {
	Slot        int            `json:"slot"`
	Number      string         `json:"card_number"`
	UID         HexBytes       `json:"uid"`
	Status      string         `json:"status"`
	KeyVersions map[string]int `json:"key_versions,omitempty"`
	ReservedAt  time.Time      `json:"reserved_at"`
	DoneAt      *time.Time     `json:"done_at,omitempty"`
}

// HexBytes is shown as upper-case hex in JSON, as card UIDs are written.
type HexBytes []byte

// MarshalText implements encoding.TextMarshaler.
func (b HexBytes) MarshalText() ([]byte, error) {
	return []byte(strings.ToUpper(hex.EncodeToString(b))), nil
}

// Batches reads and writes batches: the database of card batches, not a shop.
type Batches struct {
	pool *pgxpool.Pool
}

// NewBatches returns a Batches on pool. The schema must be migrated.
func NewBatches(pool *pgxpool.Pool) *Batches { return &Batches{pool: pool} }

// CheckNew checks the arguments of Create without a database, so that a
// caller can check them before it looks the event up. Errors wrap
// ErrInvalid.
func CheckNew(orgID int64, event string, count int, layout personalize.Layout) error {
	if orgID < 1 {
		return fmt.Errorf("%w: organizer %d", ErrInvalid, orgID)
	}
	if !personalize.ValidID(event) {
		return fmt.Errorf("%w: event %q: use 1 to %d letters, digits, '.', '_' or '-'", ErrInvalid, event, personalize.MaxIDLen)
	}
	if count < 1 || count >= personalize.SlotsPerBatch {
		return fmt.Errorf("%w: count %d: a batch holds 1 to %d cards", ErrInvalid, count, personalize.SlotsPerBatch-1)
	}
	if err := layout.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// Create makes a new open batch of count cards of event for organizer orgID,
// numbered one above the organizer's last batch. Errors wrap ErrInvalid.
func (s *Batches) Create(ctx context.Context, orgID int64, event string, count int, layout personalize.Layout) (Batch, error) {
	if err := CheckNew(orgID, event, count, layout); err != nil {
		return Batch{}, err
	}
	lj, err := json.Marshal(layout)
	if err != nil {
		return Batch{}, fmt.Errorf("batch: %w", err)
	}
	// Two concurrent creates may pick the same number; the primary key
	// refuses the second, which tries the next number.
	for range 10 {
		var no int64
		err := s.pool.QueryRow(ctx, `
			INSERT INTO card_batches (org_id, batch_no, event_id, card_count, layout)
			SELECT $1, coalesce(max(batch_no), 0) + 1, $2, $3, $4 FROM card_batches WHERE org_id = $1
			RETURNING batch_no`, orgID, event, count, lj).Scan(&no)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			continue
		}
		if err != nil {
			return Batch{}, fmt.Errorf("batch: create: %w", err)
		}
		return s.Get(ctx, orgID, no)
	}
	return Batch{}, errors.New("batch: create: too many concurrent creations, try again")
}

const batchColumns = `b.org_id, b.batch_no, b.event_id, b.card_count, b.layout, b.status, b.created_at, b.completed_at,
	b.key_versions, b.done_count, (SELECT count(*) FROM batch_cards c WHERE c.org_id = b.org_id AND c.batch_no = b.batch_no AND c.status = 'reserved')`

func scanBatch(row pgx.Row) (Batch, error) {
	var b Batch
	var lj, kv []byte
	err := row.Scan(&b.OrgID, &b.No, &b.Event, &b.Count, &lj, &b.Status, &b.CreatedAt, &b.CompletedAt, &kv, &b.Done, &b.Reserved)
	if err != nil {
		return Batch{}, err
	}
	if err := json.Unmarshal(kv, &b.KeyVersions); err != nil {
		return Batch{}, fmt.Errorf("batch %d: stored key versions: %w", b.No, err)
	}
	if len(b.KeyVersions) == 0 {
		b.KeyVersions = nil
	}
	if err := json.Unmarshal(lj, &b.Layout); err != nil {
		return Batch{}, fmt.Errorf("batch %d: stored layout: %w", b.No, err)
	}
	return b, nil
}

// Get returns one batch. Errors wrap ErrNotFound.
func (s *Batches) Get(ctx context.Context, orgID, no int64) (Batch, error) {
	b, err := scanBatch(s.pool.QueryRow(ctx, `SELECT `+batchColumns+` FROM card_batches b WHERE b.org_id = $1 AND b.batch_no = $2`, orgID, no))
	if errors.Is(err, pgx.ErrNoRows) {
		return Batch{}, fmt.Errorf("%w: batch %d of organizer %d", ErrNotFound, no, orgID)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("batch: get: %w", err)
	}
	return b, nil
}

// List returns the organizer's batches, newest first.
func (s *Batches) List(ctx context.Context, orgID int64) ([]Batch, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+batchColumns+` FROM card_batches b WHERE b.org_id = $1 ORDER BY b.batch_no DESC`, orgID)
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Batch, error) { return scanBatch(r) })
	if err != nil {
		return nil, fmt.Errorf("batch: list: %w", err)
	}
	return out, nil
}

// Cards returns the slots of a batch that are reserved or done, by slot.
func (s *Batches) Cards(ctx context.Context, orgID, no int64) ([]Card, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT slot, uid, status, key_versions, reserved_at, done_at FROM batch_cards
		WHERE org_id = $1 AND batch_no = $2 ORDER BY slot`, orgID, no)
	if err != nil {
		return nil, fmt.Errorf("batch: cards: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Card, error) {
		var c Card
		var kv []byte
		if err := r.Scan(&c.Slot, (*[]byte)(&c.UID), &c.Status, &kv, &c.ReservedAt, &c.DoneAt); err != nil {
			return Card{}, err
		}
		id, err := personalize.NewCardID(no, c.Slot)
		if err != nil {
			return Card{}, err
		}
		c.Number = id.String()
		if err := json.Unmarshal(kv, &c.KeyVersions); err != nil {
			return Card{}, err
		}
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("batch: cards: %w", err)
	}
	return out, nil
}

// PinKeyVersions records want as the base key versions of the batch's cards
// unless versions were recorded before, and returns the versions in force:
// the first station to work on a batch pins them for every later one.
// Errors wrap ErrNotFound.
func (s *Batches) PinKeyVersions(ctx context.Context, orgID, no int64, want map[string]int) (map[string]int, error) {
	if len(want) == 0 {
		return nil, fmt.Errorf("%w: no key versions to pin", ErrInvalid)
	}
	wj, err := json.Marshal(want)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	var got []byte
	err = s.pool.QueryRow(ctx, `
		UPDATE card_batches SET key_versions = CASE WHEN key_versions = '{}' THEN $3::jsonb ELSE key_versions END
		WHERE org_id = $1 AND batch_no = $2 RETURNING key_versions`, orgID, no, wj).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: batch %d of organizer %d", ErrNotFound, no, orgID)
	}
	if err != nil {
		return nil, fmt.Errorf("batch: pin key versions: %w", err)
	}
	var out map[string]int
	if err := json.Unmarshal(got, &out); err != nil {
		return nil, fmt.Errorf("batch: pinned key versions: %w", err)
	}
	return out, nil
}

// Reservation is the slot a card holds in a batch.
type Reservation struct {
	Slot   int
	CardID personalize.CardID
	// Done is true when the card was already finished in this batch.
	Done bool
	// Reassigned is true when the slot was taken over from a card that was
	// reserved earlier and never came back.
	Reassigned bool
}

// Reserve gives the card with uid a slot of the batch, before anything is
// written to the card. A card that already has a slot of this batch keeps
// it (Done tells whether it was finished). A new card takes the next slot
// never reserved; when there is none it takes over the oldest slot still
// reserved by a card that never came back. Errors wrap ErrNotFound or
// ErrFull, or are an *OtherBatchError.
//
// The reservation is committed without waiting for the disk: an
// operating-system crash may lose it, which leaves a card that is ours but
// unrecorded, and such a card reserves a slot again when presented.
func (s *Batches) Reserve(ctx context.Context, orgID, no int64, uid []byte) (r Reservation, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return Reservation{}, fmt.Errorf("batch: reserve: %w", err)
	}
	defer conn.Release()
	// Two round trips: BEGIN, the setting and the locking read go in one
	// batch, the write and COMMIT in another. Until COMMIT succeeds the
	// transaction is rolled back, or the connection closed.
	open := true
	defer func() {
		if !open {
			return
		}
		if _, rerr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	var count, next int
	var other *int64
	var slot *int
	var status *string
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	// The batch row lock orders the reservations of one batch.
	b.Queue(`SELECT b.card_count, b.next_slot, c.batch_no, c.slot, c.status
		FROM card_batches b LEFT JOIN batch_cards c ON c.org_id = b.org_id AND c.uid = $3
		WHERE b.org_id = $1 AND b.batch_no = $2 FOR UPDATE OF b`, orgID, no, uid).QueryRow(func(row pgx.Row) error {
		return row.Scan(&count, &next, &other, &slot, &status)
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Reservation{}, fmt.Errorf("%w: batch %d of organizer %d", ErrNotFound, no, orgID)
		}
		return Reservation{}, fmt.Errorf("batch: reserve: %w", err)
	}
	commit := func(b *pgx.Batch) error {
		b.Queue("COMMIT")
		err := conn.SendBatch(ctx, b).Close()
		if err == nil {
			open = false
		}
		return err
	}
	switch {
	case other != nil && *other != no:
		return Reservation{}, &OtherBatchError{BatchNo: *other, Slot: *slot, Done: *status == StatusDone}
	case other != nil:
		r.Slot, r.Done = *slot, *status == StatusDone
		err = commit(&pgx.Batch{})
	case next <= count:
		r.Slot = next
		w := &pgx.Batch{}
		w.Queue(`WITH b AS (UPDATE card_batches SET next_slot = next_slot + 1 WHERE org_id = $1 AND batch_no = $2)
			INSERT INTO batch_cards (org_id, batch_no, slot, uid, status) VALUES ($1, $2, $3, $4, 'reserved')`,
			orgID, no, next, uid)
		err = commit(w)
	default:
		err = conn.QueryRow(ctx, `
			UPDATE batch_cards SET uid = $3, reserved_at = now(), key_versions = '{}'
			WHERE (org_id, batch_no, slot) = (SELECT org_id, batch_no, slot FROM batch_cards
				WHERE org_id = $1 AND batch_no = $2 AND status = 'reserved' ORDER BY reserved_at, slot LIMIT 1)
			RETURNING slot`, orgID, no, uid).Scan(&r.Slot)
		if errors.Is(err, pgx.ErrNoRows) {
			return Reservation{}, fmt.Errorf("%w: all %d cards of batch %d are done", ErrFull, count, no)
		}
		if err == nil {
			r.Reassigned = true
			err = commit(&pgx.Batch{})
		}
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("batch: reserve: %w", err)
	}
	r.CardID, err = personalize.NewCardID(no, r.Slot)
	return r, err
}

// Finished is what the station records about a card it has finished.
type Finished struct {
	// KeyVersions maps each base key name to the version used.
	KeyVersions map[string]int
	// TokenHash is SHA-256 of the QR token.
	TokenHash []byte
	// PVV and PVVKeyVersion are the PIN verification value and the version
	// of the pin key that made it.
	PVV           []byte
	PVVKeyVersion int
	// Also, when set, queues statements that run in the transaction that
	// records the card, sent with it in one round trip: what another part
	// records with the card (the ledger's card account) commits with it
	// or not at all.
	Also func(b *pgx.Batch)
}

// Progress is a batch's count of finished cards after a Finish.
type Progress struct {
	Done, Count int
	// Complete is true when this Finish completed the batch.
	Complete bool
}

// Finish marks the card's reserved slot done and records f, and completes
// the batch with its last card, in one statement: the increment of the
// batch's counter takes its row lock, so that of two stations finishing the
// last cards together exactly one completes it. Errors wrap ErrNotReserved
// when the slot is not reserved by uid (another station took it over, or it
// is done already).
func (s *Batches) Finish(ctx context.Context, orgID, no int64, slot int, uid []byte, f Finished) (Progress, error) {
	var p Progress
	if len(f.TokenHash) != 32 || len(f.PVV) == 0 || f.PVVKeyVersion < 1 {
		return p, fmt.Errorf("%w: finishing a card needs its token hash and PIN verification value", ErrInvalid)
	}
	kv, err := json.Marshal(f.KeyVersions)
	if err != nil {
		return p, fmt.Errorf("batch: %w", err)
	}
	const finish = `
		WITH c AS (
			UPDATE batch_cards SET status = 'done', key_versions = $5, token_hash = $6, pvv = $7, pvv_key_version = $8, done_at = now()
			WHERE org_id = $1 AND batch_no = $2 AND slot = $3 AND uid = $4 AND status = 'reserved'
			RETURNING 1)
		UPDATE card_batches SET done_count = done_count + 1,
			status = CASE WHEN done_count + 1 = card_count THEN 'complete' ELSE status END,
			completed_at = CASE WHEN done_count + 1 = card_count THEN now() ELSE completed_at END
		WHERE org_id = $1 AND batch_no = $2 AND EXISTS (SELECT 1 FROM c)
		RETURNING done_count, card_count`
	args := []any{orgID, no, slot, uid, kv, f.TokenHash, f.PVV, f.PVVKeyVersion}
	if f.Also == nil {
		// One statement, one commit: the station's hot path.
		err = s.pool.QueryRow(ctx, finish, args...).Scan(&p.Done, &p.Count)
	} else {
		// The record and what goes with it in one round trip; a record
		// refused (no row) rolls all of it back.
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(finish, args...).QueryRow(func(row pgx.Row) error { return row.Scan(&p.Done, &p.Count) })
			f.Also(b)
			return tx.SendBatch(ctx, b).Close()
		})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return Progress{}, fmt.Errorf("%w: batch %d slot %d", ErrNotReserved, no, slot)
	}
	if err != nil {
		return Progress{}, fmt.Errorf("batch: finish: %w", err)
	}
	p.Complete = p.Done == p.Count
	return p, nil
}

// ParseNo parses a batch number given on the command line.
func ParseNo(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%w: batch %q is not a batch number", ErrInvalid, s)
	}
	return n, nil
}

// TokenHashes returns the token hash of every finished card of the batch,
// by card number: what the print files are checked against.
func (s *Batches) TokenHashes(ctx context.Context, orgID, no int64) (map[string][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT slot, token_hash FROM batch_cards
		WHERE org_id = $1 AND batch_no = $2 AND status = 'done'`, orgID, no)
	if err != nil {
		return nil, fmt.Errorf("batch: token hashes: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var slot int
		var h []byte
		if err := rows.Scan(&slot, &h); err != nil {
			return nil, fmt.Errorf("batch: token hashes: %w", err)
		}
		id, err := personalize.NewCardID(no, slot)
		if err != nil {
			return nil, err
		}
		out[id.String()] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("batch: token hashes: %w", err)
	}
	return out, nil
}
