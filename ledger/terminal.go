package ledger

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/loopcard/loopcard/ledger/internal/edbatch"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Errors of terminal enrolment and uploads.
var (
	ErrEnrolment         = errors.New("ledger: enrolment token invalid, used or expired")
	ErrTerminalNotActive = errors.New("ledger: terminal unknown or not active")
	// ErrNoSuchMerchant and ErrNoSuchEvent: RegisterTerminal names a
	// merchant or event the ledger does not know (they also match
	// ErrNotFound).
	ErrNoSuchMerchant = errors.New("ledger: no such merchant")
	ErrNoSuchEvent    = errors.New("ledger: no such event")
	// ErrEventRequired: a terminal registered without an event cannot
	// enrol while its organizer has no event or several; HQ registers it
	// again with its event.
	ErrEventRequired = errors.New("ledger: the terminal has no event and its organizer has not exactly one")
)

// EnrolmentToken is the one-time secret that lets a terminal enrol. It is
// shown once, to the person setting the terminal up; the ledger keeps only
// its SHA-256. It has no String method and formats as an address.
type EnrolmentToken struct {
	_ [0]func()
	b *[20]byte
}

var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Reveal returns the token's text form (32 base32 letters) for the one place
// it must appear: the person or terminal that enrols.
func (t EnrolmentToken) Reveal() string {
	if t.b == nil {
		return ""
	}
	return tokenEncoding.EncodeToString(t.b[:])
}

// ParseEnrolmentToken reads a token's text form.
func ParseEnrolmentToken(s string) (EnrolmentToken, error) {
	b, err := tokenEncoding.DecodeString(strings.ToUpper(strings.TrimSpace(s)))
	if err != nil || len(b) != 20 {
		return EnrolmentToken{}, ErrEnrolment
	}
	var k [20]byte
	copy(k[:], b)
	clear(b)
	return EnrolmentToken{b: &k}, nil
}

func (t EnrolmentToken) hash() []byte {
	if t.b == nil {
		return nil
	}
	h := sha256.Sum256(t.b[:])
	return h[:]
}

// CreateTerminal registers a terminal of a merchant, without an event (see
// RegisterTerminal), and returns its one-time enrolment token, valid for
// ttl.
func (l *Ledger) CreateTerminal(ctx context.Context, org int64, terminal, merchant string, ttl time.Duration) (EnrolmentToken, error) {
	return l.RegisterTerminal(ctx, org, TerminalRegistration{Terminal: terminal, Merchant: merchant, TTL: ttl})
}

// TerminalRegistration is what HQ registers about a terminal before it
// enrols.
type TerminalRegistration struct {
	Terminal string
	Merchant string
	// Event is the event the terminal takes payments for; empty: the one
	// its organizer has when the terminal enrols (see EnrolTerminal).
	Event string
	// TTL is how long the enrolment token is valid.
	TTL time.Duration
}

// RegisterTerminal registers a terminal and returns its one-time enrolment
// token. Registering an existing, not yet enrolled terminal again replaces
// its merchant, event and token; an enrolled one fails with ErrExists. An
// unknown merchant or event fails with ErrNoSuchMerchant or ErrNoSuchEvent
// (both also ErrNotFound), and nothing is written.
func (l *Ledger) RegisterTerminal(ctx context.Context, org int64, r TerminalRegistration) (EnrolmentToken, error) {
	if !terminaltx.ValidID(r.Terminal) {
		return EnrolmentToken{}, fmt.Errorf("%w: terminal id %q", ErrInvalid, r.Terminal)
	}
	if r.Event != "" && !terminaltx.ValidID(r.Event) {
		return EnrolmentToken{}, fmt.Errorf("%w: event id %q", ErrInvalid, r.Event)
	}
	if r.TTL <= 0 {
		return EnrolmentToken{}, fmt.Errorf("%w: token lifetime must be positive", ErrInvalid)
	}
	var k [20]byte
	if _, err := rand.Read(k[:]); err != nil {
		return EnrolmentToken{}, err
	}
	tok := EnrolmentToken{b: &k}
	var event *string
	if r.Event != "" {
		event = &r.Event
	}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var merchantOK, eventOK bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM merchants WHERE org_id = $1 AND merchant_id = $2),
				$3::text IS NULL OR EXISTS (SELECT 1 FROM events WHERE org_id = $1 AND event_id = $3)`,
			org, r.Merchant, event).Scan(&merchantOK, &eventOK); err != nil {
			return err
		}
		if !merchantOK {
			return fmt.Errorf("%w: %w: merchant %q", ErrNoSuchMerchant, ErrNotFound, r.Merchant)
		}
		if !eventOK {
			return fmt.Errorf("%w: %w: event %q", ErrNoSuchEvent, ErrNotFound, r.Event)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO terminals (org_id, terminal_id, merchant_id, event_id, status, token_hash, token_expires_at)
			VALUES ($1, $2, $3, $4, 'pending', $5, $6)
			ON CONFLICT (org_id, terminal_id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id, event_id = EXCLUDED.event_id,
				token_hash = EXCLUDED.token_hash, token_expires_at = EXCLUDED.token_expires_at
			WHERE terminals.status = 'pending'`, org, r.Terminal, r.Merchant, event, tok.hash(), l.now().Add(r.TTL))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: terminal %q is already enrolled", ErrExists, r.Terminal)
		}
		return nil
	})
	if err != nil {
		return EnrolmentToken{}, fmt.Errorf("ledger: create terminal: %w", err)
	}
	return tok, nil
}

// EnrolTerminal binds a terminal's Ed25519 public key, using up its
// enrolment token, and fixes the terminal's identity: its merchant, and its
// event, which is the one HQ registered or else, when the organizer has
// exactly one event, that one. It fails with ErrEnrolment for a wrong, used
// or expired token (without saying which), and with ErrEventRequired, using
// nothing up, when the terminal has no event and the organizer has none or
// several. Terminal returns the identity.
func (l *Ledger) EnrolTerminal(ctx context.Context, org int64, terminal string, tok EnrolmentToken, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key must be %d bytes", ErrInvalid, ed25519.PublicKeySize)
	}
	return l.inTx(ctx, func(tx pgx.Tx) error {
		var hash []byte
		var expires *time.Time
		var event *string
		err := tx.QueryRow(ctx, `SELECT token_hash, token_expires_at, event_id FROM terminals
			WHERE org_id = $1 AND terminal_id = $2 AND status = 'pending' FOR UPDATE`, org, terminal).Scan(&hash, &expires, &event)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrEnrolment
		}
		if err != nil {
			return fmt.Errorf("ledger: enrol terminal: %w", err)
		}
		if hash == nil || subtle.ConstantTimeCompare(hash, tok.hash()) != 1 || expires == nil || l.now().After(*expires) {
			return ErrEnrolment
		}
		if event == nil {
			var only []string
			rows, err := tx.Query(ctx, `SELECT event_id FROM events WHERE org_id = $1 ORDER BY event_id LIMIT 2`, org)
			if err == nil {
				only, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil {
				return fmt.Errorf("ledger: enrol terminal: %w", err)
			}
			if len(only) != 1 {
				return fmt.Errorf("%w: %s", ErrEventRequired, terminal)
			}
			event = &only[0]
		}
		_, err = tx.Exec(ctx, `UPDATE terminals SET status = 'active', public_key = $3, token_hash = NULL,
			token_expires_at = NULL, enrolled_at = now(), event_id = $4 WHERE org_id = $1 AND terminal_id = $2`, org, terminal, []byte(pub), *event)
		if err != nil {
			return fmt.Errorf("ledger: enrol terminal: %w", err)
		}
		l.log.Info("terminal enrolled", "org", org, "terminal", terminal)
		return nil
	})
}

// RevokeTerminal stops accepting a terminal's transactions.
func (l *Ledger) RevokeTerminal(ctx context.Context, org int64, terminal string) error {
	l.termMu.Lock()
	delete(l.termCache, termKey{org, terminal})
	l.termMu.Unlock()
	tag, err := l.pool.Exec(ctx, `UPDATE terminals SET status = 'revoked', token_hash = NULL WHERE org_id = $1 AND terminal_id = $2`, org, terminal)
	l.termMu.Lock()
	delete(l.termCache, termKey{org, terminal}) // again: an upload may have cached it meanwhile
	l.termMu.Unlock()
	if err != nil {
		return fmt.Errorf("ledger: revoke terminal: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: terminal %q", ErrNotFound, terminal)
	}
	return nil
}

// TerminalRecord is what the ledger knows of a terminal.
type TerminalRecord struct {
	Terminal string
	Merchant string
	// Event is the event the terminal takes payments for: registered by
	// HQ or fixed at enrolment. Empty: registered without one and not
	// enrolled yet (or enrolled before terminals had events).
	Event string
	// Status is created (registered, not enrolled), enrolled or revoked.
	Status     string
	EnrolledAt *time.Time
	// TokenExpiresAt is when a created terminal's enrolment token expires.
	TokenExpiresAt *time.Time
	// LastUpload is when the ledger received the terminal's transaction
	// with the highest terminal sequence number; nil: none yet.
	LastUpload *time.Time
	// HeartbeatAt is when the terminal last said what waits in its
	// queue (TerminalHeartbeat): Queued transactions, the oldest since
	// OldestUnsent (nil: none waits). Nil: it never said.
	HeartbeatAt  *time.Time
	Queued       int
	OldestUnsent *time.Time
}

// MaxHeartbeatQueue and MaxHeartbeatAge bound what a heartbeat may say.
const (
	MaxHeartbeatQueue = 10_000_000
	MaxHeartbeatAge   = 366 * 24 * time.Hour
)

// TerminalHeartbeat records what terminal said at at waits in its queue:
// queued transactions, the oldest of them oldest old. It is the
// console's telemetry, not money: its commit does not wait for the disk
// (a crash loses at most the last heartbeats, which the next ones
// replace), so that it costs the upload it comes with one round trip.
func (l *Ledger) TerminalHeartbeat(ctx context.Context, org int64, terminal string, at time.Time, queued int, oldest time.Duration) error {
	if queued < 0 || queued > MaxHeartbeatQueue || oldest < 0 || oldest > MaxHeartbeatAge || (queued == 0 && oldest != 0) {
		return fmt.Errorf("%w: a heartbeat's queue holds 0 to %d transactions, the oldest at most %d days old (none when the queue is empty)",
			ErrInvalid, MaxHeartbeatQueue, int(MaxHeartbeatAge/(24*time.Hour)))
	}
	var since *time.Time
	if queued > 0 {
		s := at.Add(-oldest)
		since = &s
	}
	b := &pgx.Batch{}
	// One implicit transaction: the setting is its own.
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	b.Queue(`UPDATE terminals SET heartbeat_at = $3, queued = $4, oldest_unsent_at = $5
		WHERE org_id = $1 AND terminal_id = $2 AND (heartbeat_at IS NULL OR heartbeat_at <= $3)`, org, terminal, at, queued, since)
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger: terminal heartbeat: %w", err)
	}
	return nil
}

// Terminal statuses as TerminalRecord names them.
const (
	TerminalCreated  = "created"
	TerminalEnrolled = "enrolled"
	TerminalRevoked  = "revoked"
)

// Terminals lists the organizer's terminals by id.
func (l *Ledger) Terminals(ctx context.Context, org int64) ([]TerminalRecord, error) {
	return l.terminalRecords(ctx, org, nil)
}

// Terminal returns one terminal, or ErrNotFound.
func (l *Ledger) Terminal(ctx context.Context, org int64, terminal string) (TerminalRecord, error) {
	recs, err := l.terminalRecords(ctx, org, &terminal)
	if err != nil {
		return TerminalRecord{}, err
	}
	if len(recs) == 0 {
		return TerminalRecord{}, fmt.Errorf("%w: terminal %q", ErrNotFound, terminal)
	}
	return recs[0], nil
}

func (l *Ledger) terminalRecords(ctx context.Context, org int64, only *string) ([]TerminalRecord, error) {
	rows, err := l.pool.Query(ctx, `SELECT t.terminal_id, t.merchant_id, coalesce(t.event_id, ''),
			CASE t.status WHEN 'pending' THEN 'created' WHEN 'active' THEN 'enrolled' ELSE t.status END,
			t.enrolled_at, CASE WHEN t.status = 'pending' THEN t.token_expires_at END, u.received_at,
			t.heartbeat_at, coalesce(t.queued, 0), t.oldest_unsent_at
		FROM terminals t
		LEFT JOIN LATERAL (SELECT received_at FROM terminal_txs x WHERE x.org_id = t.org_id AND x.terminal_id = t.terminal_id
			ORDER BY x.terminal_seq DESC LIMIT 1) u ON true
		WHERE t.org_id = $1 AND ($2::text IS NULL OR t.terminal_id = $2) ORDER BY t.terminal_id`, org, only)
	if err != nil {
		return nil, fmt.Errorf("ledger: terminals: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TerminalRecord, error) {
		var r TerminalRecord
		err := row.Scan(&r.Terminal, &r.Merchant, &r.Event, &r.Status, &r.EnrolledAt, &r.TokenExpiresAt, &r.LastUpload,
			&r.HeartbeatAt, &r.Queued, &r.OldestUnsent)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: terminals: %w", err)
	}
	return out, nil
}

// terminalInfo is what verifying a terminal's upload needs.
type terminalInfo struct {
	pub             ed25519.PublicKey
	xpub            *voied25519.ExpandedPublicKey // pub decompressed for single verification; nil if invalid
	batchKey        *edbatch.Key                  // pub decoded for batch verification; nil if invalid
	merchant        string
	merchantAccount int64
	// revoked: its debits are verified and recorded, but held (see
	// terminalHold).
	revoked bool
}

// enrolledTerminals returns the terminals among ids that have enrolled
// (active or since revoked), from the cache when fresh.
func (l *Ledger) enrolledTerminals(ctx context.Context, org int64, ids []string) (map[string]terminalInfo, error) {
	out := make(map[string]terminalInfo, len(ids))
	var missing []string
	now := time.Now()
	l.termMu.Lock()
	for _, id := range ids {
		if c, ok := l.termCache[termKey{org, id}]; ok && now.Sub(c.fetched) < terminalCacheTTL {
			out[id] = c.info
		} else {
			missing = append(missing, id)
		}
	}
	l.termMu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	rows, err := l.pool.Query(ctx, `SELECT t.terminal_id, t.public_key, t.merchant_id, m.account_id, t.status = 'revoked'
		FROM terminals t JOIN merchants m ON m.org_id = t.org_id AND m.merchant_id = t.merchant_id
		WHERE t.org_id = $1 AND t.terminal_id = ANY($2) AND t.status IN ('active', 'revoked') AND t.public_key IS NOT NULL`, org, missing)
	if err != nil {
		return nil, fmt.Errorf("ledger: terminals: %w", err)
	}
	defer rows.Close()
	l.termMu.Lock()
	defer l.termMu.Unlock()
	for rows.Next() {
		var id string
		var ti terminalInfo
		var pub []byte
		if err := rows.Scan(&id, &pub, &ti.merchant, &ti.merchantAccount, &ti.revoked); err != nil {
			return nil, err
		}
		ti.pub = pub
		if len(pub) == ed25519.PublicKeySize {
			ti.xpub, _ = voied25519.NewExpandedPublicKey(voied25519.PublicKey(pub))
			ti.batchKey, _ = edbatch.NewKey(pub)
		}
		out[id] = ti
		l.termCache[termKey{org, id}] = cachedTerminal{info: ti, fetched: now}
	}
	return out, rows.Err()
}
