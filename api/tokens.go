package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// ErrTokenRequest is returned by IssueToken for a role, store or lifetime
// that cannot be issued.
var ErrTokenRequest = errors.New("api: invalid token request")

// MaxTokenTTL is the longest lifetime of a staff token.
const MaxTokenTTL = 7 * 24 * time.Hour

// Token is a bearer token as issued: shown once, stored only as its
// SHA-256. It has no String method and formats as an address.
type Token struct {
	_ [0]func()
	s *string
	// ID names the token in audit records; it is not secret.
	ID string
	// Expires is when the token stops working.
	Expires time.Time
}

// Reveal returns the token's text, for the one person or program that
// will send it.
func (t Token) Reveal() string {
	if t.s == nil {
		return ""
	}
	return *t.s
}

// TokenRequest is what a staff token is for.
type TokenRequest struct {
	Org   int64
	Role  Role   // RoleHQ, RoleStore or RoleAuditor
	Store string // required for RoleStore, empty otherwise
	TTL   time.Duration
}

// IssueToken makes a staff token (loopcard token issue). Errors wrap
// ErrTokenRequest for a bad request.
func IssueToken(ctx context.Context, pool *pgxpool.Pool, req TokenRequest, now time.Time) (Token, error) {
	if err := req.Validate(); err != nil {
		return Token{}, err
	}
	var store *string
	if req.Store != "" {
		store = &req.Store
	}
	return insertToken(ctx, pool, req.Org, req.Role, store, pgtype.UUID{}, now.Add(req.TTL))
}

// Validate checks a token request; errors wrap ErrTokenRequest.
func (req TokenRequest) Validate() error {
	switch {
	case req.Org <= 0:
		return fmt.Errorf("%w: organizer must be positive", ErrTokenRequest)
	case req.Role != RoleHQ && req.Role != RoleStore && req.Role != RoleAuditor:
		return fmt.Errorf("%w: role must be hq, store or auditor", ErrTokenRequest)
	case (req.Role == RoleStore) != (req.Store != ""):
		return fmt.Errorf("%w: a store is given exactly for role store", ErrTokenRequest)
	case req.Store != "" && !terminaltx.ValidID(req.Store):
		return fmt.Errorf("%w: store id %q", ErrTokenRequest, req.Store)
	case req.TTL <= 0 || req.TTL > MaxTokenTTL:
		return fmt.Errorf("%w: lifetime must be positive and at most %s", ErrTokenRequest, MaxTokenTTL)
	}
	return nil
}

func newTokenText(org int64) (string, []byte, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	text := tokenPrefix + strconv.FormatInt(org, 10) + "_" + base64.RawURLEncoding.EncodeToString(b[:])
	clear(b[:])
	h := sha256.Sum256([]byte(text))
	return text, h[:], nil
}

func insertToken(ctx context.Context, pool *pgxpool.Pool, org int64, role Role, store *string, profile pgtype.UUID, expires time.Time) (Token, error) {
	text, hash, err := newTokenText(org)
	if err != nil {
		return Token{}, fmt.Errorf("api: token: %w", err)
	}
	id := tokenIDOf(hash)
	var prof any
	if profile.Valid {
		prof = profile
	}
	if _, err := pool.Exec(ctx, `INSERT INTO api_tokens (org_id, token_hash, token_id, role, store_id, profile_id, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, org, hash, id, string(role), store, prof, expires); err != nil {
		return Token{}, fmt.Errorf("api: store token: %w", err)
	}
	return Token{s: &text, ID: id, Expires: expires}, nil
}
