package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/api/apitype"
)

// AuditRecord is an audit record made outside an HTTP request: a command
// an operator ran against the database or the HSM (loopcard token issue,
// ledger store, ...). It goes to the same log as the API's records, which
// GET /v1/audit/records exports to the organizer's auditors. Org 0 is the
// platform: records no organizer owns.
type AuditRecord struct {
	Org int64
	// Actor names who acted, as "cli:NAME" for an operator.
	Actor string
	// Action is the command, such as "cli token issue".
	Action  string
	Target  string
	Detail  string
	Failed  bool
	Refused bool
}

// WriteAudit stores rec with a new request id and returns it. Its texts
// are cleaned as the API's are (input.Clean): the record is written
// whatever they hold.
func WriteAudit(ctx context.Context, pool *pgxpool.Pool, rec AuditRecord, now time.Time) (string, error) {
	id := newRequestID()
	outcome, status := "ok", http.StatusOK
	switch {
	case rec.Refused:
		outcome, status = "denied", http.StatusForbidden
	case rec.Failed:
		outcome, status = "failed", http.StatusInternalServerError
	}
	_, err := pool.Exec(ctx, `INSERT INTO api_audit (org_id, at, request_id, actor, action, target, remote_addr, outcome, status, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		rec.Org, now, id, truncate(rec.Actor, 300), truncate(rec.Action, 300), truncate(rec.Target, 300), "local",
		outcome, status, truncate(rec.Detail, 500))
	if err != nil {
		return "", fmt.Errorf("api: audit record: %w", err)
	}
	return id, nil
}

// AuditRecordsPage is the most records AuditRecords returns at once.
const AuditRecordsPage = 1000

// AuditRecords returns the organizer's audit records after record id
// after, oldest first, at most AuditRecordsPage: what GET
// /v1/audit/records exports to the organizer's auditors. Org 0 is the
// platform's records: the refusals of requests no credential tied to an
// organizer, and the operators' commands on the HSM (loopcard audit
// records --platform reads them).
func AuditRecords(ctx context.Context, pool *pgxpool.Pool, org, after int64) ([]apitype.AuditRecord, error) {
	rows, err := pool.Query(ctx, `SELECT audit_id, at, request_id, actor, action, target, remote_addr, outcome, status, detail
		FROM api_audit WHERE org_id = $1 AND audit_id > $2 ORDER BY audit_id LIMIT $3`, org, after, AuditRecordsPage)
	if err != nil {
		return nil, fmt.Errorf("api: audit export: %w", err)
	}
	out := []apitype.AuditRecord{}
	var a apitype.AuditRecord
	if _, err := pgx.ForEachRow(rows, []any{&a.ID, &a.At, &a.RequestID, &a.Actor, &a.Action, &a.Target, &a.Remote, &a.Outcome, &a.Status, &a.Detail}, func() error {
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("api: audit export: %w", err)
	}
	return out, nil
}

// ErrNoToken is returned by RevokeToken for a staff token the organizer
// does not have.
var ErrNoToken = errors.New("api: no such staff token")

// validTokenID is the form of Token.ID: 16 hex digits.
var validTokenID = regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString

// TokenInfo is a staff token as listed: never its text or hash.
type TokenInfo struct {
	ID        string     `json:"id"`
	Role      Role       `json:"role"`
	Store     string     `json:"store,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// ListTokens lists the organizer's staff tokens (hq, store, auditor),
// newest first, at most 1000.
func ListTokens(ctx context.Context, pool *pgxpool.Pool, org int64) ([]TokenInfo, error) {
	rows, err := pool.Query(ctx, `SELECT token_id, role, coalesce(store_id, ''), created_at, expires_at, revoked_at FROM api_tokens
		WHERE org_id = $1 AND role IN ('hq', 'store', 'auditor') ORDER BY created_at DESC, token_id LIMIT 1000`, org)
	if err != nil {
		return nil, fmt.Errorf("api: tokens: %w", err)
	}
	out := []TokenInfo{}
	var t TokenInfo
	if _, err := pgx.ForEachRow(rows, []any{&t.ID, &t.Role, &t.Store, &t.CreatedAt, &t.ExpiresAt, &t.RevokedAt}, func() error {
		out = append(out, t)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("api: tokens: %w", err)
	}
	return out, nil
}

// RevokeToken revokes the organizer's staff token id (TokenInfo.ID): the
// next request with it is refused (401); revoking it again does nothing.
// It fails with ErrNoToken for an id the organizer has no staff token of.
func RevokeToken(ctx context.Context, pool *pgxpool.Pool, org int64, id string, now time.Time) error {
	if !validTokenID(id) {
		return fmt.Errorf("%w: %q is not a token id (16 hex digits, from 'loopcard token list')", ErrNoToken, id)
	}
	var n int
	err := pool.QueryRow(ctx, `WITH t AS (
			UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3)
			WHERE org_id = $1 AND token_id = $2 AND role IN ('hq', 'store', 'auditor') RETURNING 1)
		SELECT count(*) FROM t`, org, id, now).Scan(&n)
	if err != nil {
		return fmt.Errorf("api: revoke token: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s of organizer %d", ErrNoToken, id, org)
	}
	return nil
}

// revokeToken is DELETE /v1/hq/tokens/{token}: HQ revokes one of its
// organizer's staff tokens.
func (s *Server) revokeToken(c *call) error {
	id := c.r.PathValue("token")
	c.target = "token " + id
	err := RevokeToken(c.ctx, s.pool, c.who.org, id, s.now())
	if errors.Is(err, ErrNoToken) {
		return apiError(http.StatusNotFound, "no such staff token", err)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"token": id, "status": "revoked"})
}
