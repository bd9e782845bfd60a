package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Staff accounts (api_staff) are the people who sign in to the HQ console:
// a name per organizer, a role (hq, store or auditor), an argon2id
// password and, required for hq, a TOTP second factor (RFC 6238: SHA-1,
// 6 digits, 30 s, one step of skew, each step good once). A signed-in
// browser holds a session (api_staff_sessions) that ends after
// StaffIdle without use or StaffLifetime after sign-in, whichever is
// first. API staff tokens (api_tokens) stay for machines.
const (
	StaffIdle     = 30 * time.Minute
	StaffLifetime = 12 * time.Hour
	// staffSeenEvery is how often a session's use is noted.
	staffSeenEvery = time.Minute

	// After staffFreeFailures wrong sign-ins in a row an account waits
	// staffBackoff, doubled with each further failure up to staffMaxBackoff.
	staffFreeFailures = 5
	staffBackoff      = time.Minute
	staffMaxBackoff   = time.Hour

	totpPeriod = 30
	totpIssuer = "Loopcard"
)

// Errors of the staff accounts. A failed sign-in is ErrStaffLogin,
// whatever was wrong, also while the account waits out its back-off
// (which only its audit record, ErrStaffLocked, says).
var (
	ErrStaffLogin   = errors.New("api: wrong organizer, name, password or code")
	ErrStaffLocked  = errors.New("api: too many failed sign-ins: the account waits")
	ErrStaffSession = errors.New("api: staff session ended: sign in again")
	ErrNoStaff      = errors.New("api: no such staff account")
	ErrStaffExists  = errors.New("api: a staff account of that name exists")
)

// validStaffName is the form of a staff account's name.
var validStaffName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`).MatchString

// Sealer encrypts the TOTP secrets under the HSM's data-kek; *keys.HSM is one.
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (*keys.Envelope, error)
	Unseal(ctx context.Context, env *keys.Envelope, aad []byte) ([]byte, error)
}

// NewStaff is a staff account to add.
type NewStaff struct {
	Org      int64
	Name     string
	Role     Role
	Store    string // the store of a store account
	Password []byte
	// TOTP gives a store or auditor account a second factor too; hq
	// accounts always have one.
	TOTP bool
	// PasswordMemory (KiB) and PasswordTime are the argon2id cost; zero
	// is Limits' default.
	PasswordMemory, PasswordTime uint32
}

// MinStaffPassword is the shortest password a staff account takes.
const MinStaffPassword = 12

// Validate checks req without the database.
func (req NewStaff) Validate() error {
	if req.Org <= 0 {
		return errors.New("api: organizer must be positive")
	}
	if !validStaffName(req.Name) {
		return errors.New("api: name is 1 to 63 of a-z 0-9 . _ - and starts with a letter or digit")
	}
	switch req.Role {
	case RoleHQ, RoleAuditor:
		if req.Store != "" {
			return errors.New("api: only a store account has a store")
		}
	case RoleStore:
		if !terminaltx.ValidID(req.Store) {
			return errors.New("api: a store account needs its store (a-z 0-9 . _ -)")
		}
	default:
		return errors.New("api: role is hq, store or auditor")
	}
	if len(req.Password) < MinStaffPassword || len(req.Password) > 1024 {
		return fmt.Errorf("api: the password is %d to 1024 bytes", MinStaffPassword)
	}
	return input.Text("password", string(req.Password), 1024)
}

// StaffEnrolment is what adding an account shows once: the TOTP secret
// (base32) and its otpauth URI for an authenticator app. Empty without a
// second factor.
type StaffEnrolment struct {
	TOTPSecret string
	TOTPURI    string
}

func totpAAD(org int64, name string) []byte {
	return []byte("loopcard-staff-totp:" + strconv.FormatInt(org, 10) + ":" + name)
}

// AddStaff adds a staff account. It fails with ErrStaffExists for a name
// the organizer has.
func AddStaff(ctx context.Context, pool *pgxpool.Pool, sealer Sealer, req NewStaff, now time.Time) (StaffEnrolment, error) {
	if err := req.Validate(); err != nil {
		return StaffEnrolment{}, err
	}
	lim := Limits{PasswordMemory: req.PasswordMemory, PasswordTime: req.PasswordTime}
	lim.defaults()
	hash, err := hashPassword(req.Password, lim.PasswordMemory, lim.PasswordTime)
	if err != nil {
		return StaffEnrolment{}, fmt.Errorf("api: hash password: %w", err)
	}
	var enr StaffEnrolment
	var envJSON []byte
	if req.Role == RoleHQ || req.TOTP {
		key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: fmt.Sprintf("%s@%d", req.Name, req.Org),
			Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: rand.Reader})
		if err != nil {
			return StaffEnrolment{}, fmt.Errorf("api: totp secret: %w", err)
		}
		env, err := sealer.Seal(ctx, []byte(key.Secret()), totpAAD(req.Org, req.Name))
		if err != nil {
			return StaffEnrolment{}, fmt.Errorf("api: seal totp secret: %w", err)
		}
		if envJSON, err = json.Marshal(env); err != nil {
			return StaffEnrolment{}, fmt.Errorf("api: seal totp secret: %w", err)
		}
		enr = StaffEnrolment{TOTPSecret: key.Secret(), TOTPURI: key.URL()}
	}
	var store *string
	if req.Store != "" {
		store = &req.Store
	}
	_, err = pool.Exec(ctx, `INSERT INTO api_staff (org_id, name, role, store_id, password_hash, totp_envelope, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, req.Org, req.Name, string(req.Role), store, hash, envJSON, now)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return StaffEnrolment{}, fmt.Errorf("%w: %s (loopcard staff list shows them)", ErrStaffExists, req.Name)
	}
	if err != nil {
		return StaffEnrolment{}, fmt.Errorf("api: add staff: %w", err)
	}
	return enr, nil
}

// StaffAccount is a staff account as listed: never its password or secret.
type StaffAccount struct {
	Org          int64      `json:"organizer"`
	Name         string     `json:"name"`
	Role         Role       `json:"role"`
	Store        string     `json:"store,omitempty"`
	TOTP         bool       `json:"totp"`
	CreatedAt    time.Time  `json:"created_at"`
	DisabledAt   *time.Time `json:"disabled_at,omitempty"`
	FailedLogins int        `json:"failed_logins"`
	LockedUntil  *time.Time `json:"locked_until,omitempty"`
}

// ListStaff lists the organizer's staff accounts by name.
func ListStaff(ctx context.Context, pool *pgxpool.Pool, org int64) ([]StaffAccount, error) {
	rows, err := pool.Query(ctx, `SELECT org_id, name, role, coalesce(store_id, ''), totp_envelope IS NOT NULL, created_at,
		disabled_at, failed_logins, locked_until FROM api_staff WHERE org_id = $1 ORDER BY name`, org)
	if err != nil {
		return nil, fmt.Errorf("api: list staff: %w", err)
	}
	out := []StaffAccount{}
	var a StaffAccount
	if _, err := pgx.ForEachRow(rows, []any{&a.Org, &a.Name, &a.Role, &a.Store, &a.TOTP, &a.CreatedAt, &a.DisabledAt,
		&a.FailedLogins, &a.LockedUntil}, func() error {
		out = append(out, a)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("api: list staff: %w", err)
	}
	return out, nil
}

// DisableStaff disables a staff account and ends its sessions. It fails
// with ErrNoStaff for an account the organizer does not have or that is
// disabled already.
func DisableStaff(ctx context.Context, pool *pgxpool.Pool, org int64, name string, now time.Time) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE api_staff SET disabled_at = $3 WHERE org_id = $1 AND name = $2 AND disabled_at IS NULL`, org, name, now)
		if err != nil {
			return fmt.Errorf("api: disable staff: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: %q of organizer %d is not an active account (loopcard staff list shows them)", ErrNoStaff, name, org)
		}
		if _, err := tx.Exec(ctx, `UPDATE api_staff_sessions SET ended_at = $3 WHERE org_id = $1 AND name = $2 AND ended_at IS NULL`,
			org, name, now); err != nil {
			return fmt.Errorf("api: end sessions: %w", err)
		}
		return nil
	})
}

// staffPrefix starts a session cookie's value: "lcs_" and 32 random bytes
// in base64url.
const staffPrefix = "lcs_"

func parseStaffSession(tok string) ([]byte, bool) {
	rest, ok := cutPrefix(tok, staffPrefix)
	if !ok {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != 32 {
		return nil, false
	}
	clear(b)
	h := sha256.Sum256([]byte(tok))
	return h[:], true
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) < len(p) || s[:len(p)] != p {
		return "", false
	}
	return s[len(p):], true
}

// staffAccountRow is what a sign-in reads of an account.
type staffAccountRow struct {
	role     string
	store    *string
	hash     string
	env      []byte
	step     int64
	failed   int
	locked   *time.Time
	disabled *time.Time
}

// staffLogin signs a staff member in: the password, and the TOTP code
// where the account has a second factor. It returns the session's
// cookie value and the principal. Failures count towards the account's
// back-off; each sign-in and each refusal leaves an audit record.
func (s *Server) staffLogin(ctx context.Context, ip string, org int64, name string, password []byte, code string) (string, principal, error) {
	now := s.now()
	p := principal{org: org}
	var sessionTok string
	var outcome error
	if !validStaffName(name) || org <= 0 {
		// Not a name an account can have (nor text PostgreSQL takes).
		checkPassword(s.dummyHash(), password)
		name = input.Clean(name, 64)
		outcome = ErrStaffLogin
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if outcome != nil {
			return nil
		}
		var a staffAccountRow
		err := tx.QueryRow(ctx, `SELECT role, store_id, password_hash, totp_envelope, totp_step, failed_logins, locked_until, disabled_at
			FROM api_staff WHERE org_id = $1 AND name = $2 FOR UPDATE`, org, name).
			Scan(&a.role, &a.store, &a.hash, &a.env, &a.step, &a.failed, &a.locked, &a.disabled)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && a.disabled != nil) {
			checkPassword(s.dummyHash(), password)
			outcome = ErrStaffLogin
			return nil
		}
		if err != nil {
			return fmt.Errorf("api: staff lookup: %w", err)
		}
		if a.locked != nil && now.Before(*a.locked) {
			// Refused as a wrong password is (as an unknown name is), so
			// that the back-off tells no one which names exist.
			checkPassword(s.dummyHash(), password)
			outcome = ErrStaffLocked
			return nil
		}
		ok := checkPassword(a.hash, password)
		step := a.step
		if a.env != nil || a.role == string(RoleHQ) {
			got, okCode := s.checkTOTP(ctx, org, name, a.env, a.step, code, now)
			ok = ok && okCode
			step = got
		}
		if !ok {
			a.failed++
			var until *time.Time
			if a.failed >= staffFreeFailures {
				wait := staffBackoff << min(a.failed-staffFreeFailures, 10)
				wait = min(wait, staffMaxBackoff)
				t := now.Add(wait)
				until = &t
			}
			if _, err := tx.Exec(ctx, `UPDATE api_staff SET failed_logins = $3, locked_until = $4 WHERE org_id = $1 AND name = $2`,
				org, name, a.failed, until); err != nil {
				return fmt.Errorf("api: staff back-off: %w", err)
			}
			outcome = ErrStaffLogin
			return nil
		}
		p.role, p.staff = Role(a.role), name
		if a.store != nil {
			p.store = *a.store
		}
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return fmt.Errorf("api: session: %w", err)
		}
		sessionTok = staffPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		clear(raw[:])
		h := sha256.Sum256([]byte(sessionTok))
		if _, err := tx.Exec(ctx, `UPDATE api_staff SET failed_logins = 0, locked_until = NULL, totp_step = $3 WHERE org_id = $1 AND name = $2`,
			org, name, step); err != nil {
			return fmt.Errorf("api: staff sign-in: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO api_staff_sessions (session_hash, org_id, name, created_at, last_seen_at, expires_at)
			VALUES ($1, $2, $3, $4, $4, $5)`, h[:], org, name, now, now.Add(StaffLifetime)); err != nil {
			return fmt.Errorf("api: session: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", principal{}, err
	}
	// A refused sign-in proved no organizer: it is recorded under the
	// platform's (0), naming the organizer and name that were tried, as
	// the API records a refused credential.
	rec := AuditRecord{Org: org, Actor: p.actor(), Action: "console sign-in", Target: fmt.Sprintf("staff %d:%s", org, name)}
	if outcome != nil {
		rec.Org, rec.Actor, rec.Refused, rec.Detail = 0, "anonymous", true, outcome.Error()
		s.metrics.Inc("staff_login_refused")
	}
	s.writeAudit(ctx, ip, rec)
	if outcome != nil {
		return "", principal{}, ErrStaffLogin
	}
	return sessionTok, p, nil
}

// checkTOTP checks code against the account's sealed secret: a code of
// the step before, this step or the one after, later than the last one
// accepted. It returns the step to remember.
func (s *Server) checkTOTP(ctx context.Context, org int64, name string, envJSON []byte, last int64, code string, now time.Time) (int64, bool) {
	if envJSON == nil || len(code) != 6 {
		return last, false
	}
	var env keys.Envelope
	if err := json.Unmarshal(envJSON, &env); err != nil {
		s.log.Error("api: staff totp envelope", "err", err)
		return last, false
	}
	secret, err := s.hsm.Unseal(ctx, &env, totpAAD(org, name))
	if err != nil {
		s.log.Error("api: staff totp unseal", "err", err)
		return last, false
	}
	defer clear(secret)
	cur := now.Unix() / totpPeriod
	match := int64(0)
	for step := cur - 1; step <= cur+1; step++ {
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(step*totpPeriod, 0),
			totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return last, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > last {
			match = step
		}
	}
	if match == 0 {
		return last, false
	}
	return match, true
}

// staffSession finds the principal of a session cookie, and notes its
// use. An unknown, ended, idle or expired session is ErrStaffSession.
func (s *Server) staffSession(ctx context.Context, tok string) (principal, error) {
	h, ok := parseStaffSession(tok)
	if !ok {
		return principal{}, ErrStaffSession
	}
	now := s.now()
	var p principal
	var role string
	var store *string
	var seen, expires time.Time
	err := s.pool.QueryRow(ctx, `SELECT s.org_id, s.name, st.role, st.store_id, s.last_seen_at, s.expires_at
		FROM api_staff_sessions s JOIN api_staff st ON st.org_id = s.org_id AND st.name = s.name
		WHERE s.session_hash = $1 AND s.ended_at IS NULL AND st.disabled_at IS NULL`, h).
		Scan(&p.org, &p.staff, &role, &store, &seen, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return principal{}, ErrStaffSession
	}
	if err != nil {
		return principal{}, fmt.Errorf("api: staff session: %w", err)
	}
	if !now.Before(expires) || now.Sub(seen) >= StaffIdle {
		if _, err := s.pool.Exec(ctx, `UPDATE api_staff_sessions SET ended_at = $2 WHERE session_hash = $1 AND ended_at IS NULL`, h, now); err != nil {
			return principal{}, fmt.Errorf("api: staff session: %w", err)
		}
		return principal{}, ErrStaffSession
	}
	// The use is noted once a minute at most: a page is then no durable
	// write of the session's (the idle time counts from a use at most
	// staffSeenEvery before the last).
	p.role = Role(role)
	if store != nil {
		p.store = *store
	}
	if now.Sub(seen) < staffSeenEvery {
		return p, nil
	}
	if _, err := s.pool.Exec(ctx, `UPDATE api_staff_sessions SET last_seen_at = $2 WHERE session_hash = $1 AND last_seen_at < $2`, h, now); err != nil {
		return principal{}, fmt.Errorf("api: staff session: %w", err)
	}
	return p, nil
}

// staffLogout ends a session.
func (s *Server) staffLogout(ctx context.Context, ip, tok string) error {
	h, ok := parseStaffSession(tok)
	if !ok {
		return nil
	}
	var org int64
	var name string
	err := s.pool.QueryRow(ctx, `UPDATE api_staff_sessions SET ended_at = $2 WHERE session_hash = $1 AND ended_at IS NULL
		RETURNING org_id, name`, h, s.now()).Scan(&org, &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("api: staff sign-out: %w", err)
	}
	s.writeAudit(ctx, ip, AuditRecord{Org: org, Actor: "staff:" + name, Action: "console sign-out", Target: "staff " + name})
	return nil
}

// writeAudit writes a record the console made outside a route's chain.
func (s *Server) writeAudit(ctx context.Context, ip string, rec AuditRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rec.Detail = strings.TrimSpace(rec.Detail + " (from " + ip + ")")
	if _, err := WriteAudit(ctx, s.pool, rec, s.now()); err != nil {
		s.metrics.Inc("audit_write_failed")
		s.log.Error("api: audit record not written", "action", rec.Action, "remote", ip, "err", err)
	}
}

// TOTPCode is the code of secret (base32) at t: for tests and for a
// person without an authenticator app at hand.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}
