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

// CreateTerminal registers a terminal of a merchant and returns its one-time
// enrolment token, valid for ttl. Creating an existing, not yet enrolled
// terminal again issues a new token; an enrolled one fails with ErrExists.
func (l *Ledger) CreateTerminal(ctx context.Context, org int64, terminal, merchant string, ttl time.Duration) (EnrolmentToken, error) {
	if !terminaltx.ValidID(terminal) {
		return EnrolmentToken{}, fmt.Errorf("%w: terminal id %q", ErrInvalid, terminal)
	}
	var k [20]byte
	if _, err := rand.Read(k[:]); err != nil {
		return EnrolmentToken{}, err
	}
	tok := EnrolmentToken{b: &k}
	err := l.inTx(ctx, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT true FROM merchants WHERE org_id = $1 AND merchant_id = $2`, org, merchant).Scan(&ok); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: merchant %q", ErrNotFound, merchant)
			}
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO terminals (org_id, terminal_id, merchant_id, status, token_hash, token_expires_at)
			VALUES ($1, $2, $3, 'pending', $4, $5)
			ON CONFLICT (org_id, terminal_id) DO UPDATE SET merchant_id = EXCLUDED.merchant_id,
				token_hash = EXCLUDED.token_hash, token_expires_at = EXCLUDED.token_expires_at
			WHERE terminals.status = 'pending'`, org, terminal, merchant, tok.hash(), l.now().Add(ttl))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: terminal %q is already enrolled", ErrExists, terminal)
		}
		return nil
	})
	if err != nil {
		return EnrolmentToken{}, fmt.Errorf("ledger: create terminal: %w", err)
	}
	return tok, nil
}

// EnrolTerminal binds a terminal's Ed25519 public key, using up its
// enrolment token. It fails with ErrEnrolment for a wrong, used or expired
// token (without saying which).
func (l *Ledger) EnrolTerminal(ctx context.Context, org int64, terminal string, tok EnrolmentToken, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key must be %d bytes", ErrInvalid, ed25519.PublicKeySize)
	}
	return l.inTx(ctx, func(tx pgx.Tx) error {
		var hash []byte
		var expires *time.Time
		err := tx.QueryRow(ctx, `SELECT token_hash, token_expires_at FROM terminals
			WHERE org_id = $1 AND terminal_id = $2 AND status = 'pending' FOR UPDATE`, org, terminal).Scan(&hash, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrEnrolment
		}
		if err != nil {
			return fmt.Errorf("ledger: enrol terminal: %w", err)
		}
		if hash == nil || subtle.ConstantTimeCompare(hash, tok.hash()) != 1 || expires == nil || l.now().After(*expires) {
			return ErrEnrolment
		}
		_, err = tx.Exec(ctx, `UPDATE terminals SET status = 'active', public_key = $3, token_hash = NULL,
			token_expires_at = NULL, enrolled_at = now() WHERE org_id = $1 AND terminal_id = $2`, org, terminal, []byte(pub))
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

// terminalInfo is what verifying a terminal's upload needs.
type terminalInfo struct {
	pub             ed25519.PublicKey
	xpub            *voied25519.ExpandedPublicKey // pub decompressed for single verification; nil if invalid
	batchKey        *edbatch.Key                  // pub decoded for batch verification; nil if invalid
	merchant        string
	merchantAccount int64
}

// activeTerminals returns the active terminals among ids, from the cache
// when fresh.
func (l *Ledger) activeTerminals(ctx context.Context, org int64, ids []string) (map[string]terminalInfo, error) {
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
	rows, err := l.pool.Query(ctx, `SELECT t.terminal_id, t.public_key, t.merchant_id, m.account_id
		FROM terminals t JOIN merchants m ON m.org_id = t.org_id AND m.merchant_id = t.merchant_id
		WHERE t.org_id = $1 AND t.terminal_id = ANY($2) AND t.status = 'active'`, org, missing)
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
		if err := rows.Scan(&id, &pub, &ti.merchant, &ti.merchantAccount); err != nil {
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
