package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/crypto/argon2"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

func (s *Server) cardStatus(c *call, org int64, card []byte) (apitype.CardStatus, error) {
	ci, err := s.ledger.Card(c.ctx, org, card)
	if err != nil {
		return apitype.CardStatus{}, err
	}
	st := apitype.CardStatus{Card: terminaltx.CardHex(card), Event: ci.Event, Status: ci.Status, Balance: ci.Balance, Pending: ci.Pending,
		NonRefundable: ci.NonRefundable}
	if ci.Status == "refunded" {
		r, err := s.ledger.CardRefund(c.ctx, org, card)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
		case err != nil:
			return apitype.CardStatus{}, err
		default:
			st.Refund = &apitype.RefundStatus{ID: r.ID.String(), Status: r.Status, Amount: r.Amount}
		}
	}
	return st, nil
}

func (s *Server) cardBalance(c *call) error {
	st, err := s.cardStatus(c, c.who.org, c.who.card)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, st)
}

// history is a card's status and its latest payments and top-ups.
func (s *Server) history(c *call, org int64, card []byte) (apitype.History, error) {
	st, err := s.cardStatus(c, org, card)
	if err != nil {
		return apitype.History{}, err
	}
	lh, err := s.ledger.CardHistory(c.ctx, org, card, 500)
	if err != nil {
		return apitype.History{}, fmt.Errorf("api: history: %w", err)
	}
	h := apitype.History{CardStatus: st, Payments: make([]apitype.Payment, 0, len(lh.Payments)), TopUps: make([]apitype.TopUp, 0, len(lh.TopUps))}
	for _, p := range lh.Payments {
		h.Payments = append(h.Payments, apitype.Payment{ID: p.ID.String(), At: p.At, Merchant: p.Merchant, Amount: p.Amount,
			CardSeq: p.CardSeq, After: p.BalanceAfter, Status: p.Status})
	}
	for _, t := range lh.TopUps {
		h.TopUps = append(h.TopUps, apitype.TopUp{ID: t.ID.String(), At: t.At, Channel: t.Channel, Store: t.Store, Amount: t.Amount, Status: t.Status})
	}
	return h, nil
}

// refuseClaimed answers errClaimed when a profile claimed the card: after
// a claim only the profile's login shows the card's history or requests
// its refund, not the QR token and PIN (which are printed on the card and
// may have been seen by others).
func (s *Server) refuseClaimed(c *call, org int64, card []byte) error {
	var claimed bool
	if err := s.pool.QueryRow(c.ctx, `SELECT EXISTS (SELECT 1 FROM api_profile_cards WHERE org_id = $1 AND card_id = $2)`,
		org, card).Scan(&claimed); err != nil {
		return fmt.Errorf("api: card claimed: %w", err)
	}
	if claimed {
		return errClaimed
	}
	return nil
}

func (s *Server) cardHistory(c *call) error {
	c.target = "card " + terminaltx.CardHex(c.who.card)
	if err := s.refuseClaimed(c, c.who.org, c.who.card); err != nil {
		return err
	}
	h, err := s.history(c, c.who.org, c.who.card)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, h)
}

func validIBAN(s string) bool {
	s = strings.ReplaceAll(strings.ToUpper(s), " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	// ISO 13616: move the first four characters to the end, letters to
	// numbers, and the result mod 97 must be 1.
	r := s[4:] + s[:4]
	mod := 0
	for i := 0; i < len(r); i++ {
		ch := r[i]
		switch {
		case ch >= '0' && ch <= '9':
			mod = (mod*10 + int(ch-'0')) % 97
		case ch >= 'A' && ch <= 'Z':
			v := int(ch-'A') + 10
			mod = (mod*100 + v) % 97
		default:
			return false
		}
	}
	return mod == 1
}

// requestRefund asks the ledger to refund the card's remaining credit to
// the given account (the ledger keeps holder and IBAN for the payout, which
// fixes the amount), and keeps a sealed copy of the payout details with the
// request for the cardholder's data export, which erasure deletes. The
// refund is pending until paid out. The copy names the profile that asked
// (profile, or no profile for a request made with the QR token and PIN):
// only that profile exports or erases it.
func (s *Server) requestRefund(c *call, org int64, card []byte, profile pgtype.UUID) error {
	var req apitype.RefundRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	c.target = "card " + terminaltx.CardHex(card)
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 200 || !validIBAN(req.IBAN) {
		return badRequest("name and a valid IBAN are required", nil)
	}
	id, credit, err := s.ledger.RequestRefund(c.ctx, org, ledger.RefundRequest{Card: card, Holder: strings.TrimSpace(req.Name), IBAN: req.IBAN})
	switch {
	case errors.Is(err, ledger.ErrExists):
		return apiError(http.StatusConflict, "a refund is already requested for this card", err)
	case err != nil:
		return err
	}
	rid := pgtype.UUID{Bytes: id, Valid: true}
	c.detail = fmt.Sprintf("refund request %s, credit %d (the amount is fixed at payout)", id, credit)
	plain, _ := json.Marshal(req)
	env, err := s.hsm.Seal(c.ctx, plain, []byte("loopcard refund v1|"+id.String()))
	clear(plain)
	if err == nil {
		_, err = s.pool.Exec(c.ctx, `INSERT INTO api_refund_requests (org_id, request_id, card_id, amount, payout_sealed, requested_at, profile_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, org, rid, card, credit, env, s.now(), profile)
	}
	if err != nil {
		// The refund stands in the ledger; only the cardholder's copy is missing.
		s.log.Error("api: refund requested but not recorded for export", "request_id", c.id, "refund", id.String(), "err", err)
		s.metrics.Inc("refund_copy_failed")
	}
	return c.reply(http.StatusCreated, apitype.RefundResponse{ID: id.String(), Card: terminaltx.CardHex(card), Credit: credit,
		Status: ledger.RefundPending})
}

// cardRefund is a refund requested with the QR token and PIN; a claimed
// card's refund is requested by its profile (errClaimed).
func (s *Server) cardRefund(c *call) error {
	if err := s.refuseClaimed(c, c.who.org, c.who.card); err != nil {
		c.target = "card " + terminaltx.CardHex(c.who.card)
		return err
	}
	return s.requestRefund(c, c.who.org, c.who.card, pgtype.UUID{})
}

func (s *Server) profileRefund(c *call) error {
	card, _ := parseCardID(c.r.PathValue("card"))
	return s.requestRefund(c, c.who.org, card, c.who.profile)
}

// ownsCard lets a profile act on the cards it claimed only.
func (s *Server) ownsCard(c *call, cardText string) error {
	card, ok := parseCardID(cardText)
	if !ok {
		return errForbidden
	}
	var yes bool
	err := s.pool.QueryRow(c.ctx, `SELECT true FROM api_profile_cards WHERE org_id = $1 AND card_id = $2 AND profile_id = $3`,
		c.who.org, card, c.who.profile).Scan(&yes)
	if errors.Is(err, pgx.ErrNoRows) {
		return errForbidden
	}
	return err
}

// Password hashing: argon2id, by default with the parameters OWASP
// recommends for 19 MiB of memory (Limits.PasswordMemory, PasswordTime).
const (
	argonThreads = 1
	argonKeyLen  = 32
)

func (s *Server) hashPassword(pw []byte) (string, error) {
	return hashPassword(pw, s.limits.PasswordMemory, s.limits.PasswordTime)
}

// hashPassword hashes pw with argon2id at memory m (KiB) and time t.
func hashPassword(pw []byte, m, t uint32) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k := argon2.IDKey(pw, salt, t, m, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(k)), nil
}

func checkPassword(encoded string, pw []byte) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return false
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 256*1024 || t > 10 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey(pw, salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash keeps a login for an unknown email as slow as for a known one.
func (s *Server) dummyHash() string {
	s.dummyOnce.Do(func() { s.dummy, _ = s.hashPassword([]byte("loopcard timing equaliser")) })
	return s.dummy
}

// emailMAC is the key by which a profile is found from its email: an
// HMAC-SHA256 in the HSM (key email-mac) of the normalised email and the
// organizer, with the key version that made it. The database alone cannot
// tell whether a guessed address has a profile.
func (s *Server) emailMAC(ctx context.Context, org int64, email string) (version int, mac []byte, err error) {
	msg := []byte("loopcard email v2\x00" + strconv.FormatInt(org, 10) + "\x00" + normalEmail(email))
	defer clear(msg)
	version, mac, err = s.hsm.EmailMAC(ctx, msg)
	if err != nil {
		return 0, nil, fmt.Errorf("api: email MAC (is email-mac in the HSM? run `loopcard keys init`): %w", err)
	}
	return version, mac, nil
}

// RehashEmails MACs again, from its sealed email, every profile whose
// email_mac was made otherwise than with the newest email-mac key: a
// plain SHA-256 of before migration 024 (version 0), or an older key
// version after `loopcard keys rotate email-mac`. A migration cannot ask
// the HSM, so Serve calls this before it listens; until then such a
// profile's login and claims do not find it. It returns how many profiles
// it changed.
func (s *Server) RehashEmails(ctx context.Context) (int, error) {
	newest, _, err := s.emailMAC(ctx, 0, "")
	if err != nil {
		return 0, err
	}
	done := 0
	for {
		type row struct {
			org     int64
			profile pgtype.UUID
			version int
			env     keys.Envelope
		}
		rows, err := s.pool.Query(ctx, `SELECT org_id, profile_id, email_mac_version, email_sealed FROM api_profiles
			WHERE email_mac_version <> $1 ORDER BY org_id, profile_id LIMIT 500`, newest)
		if err != nil {
			return done, fmt.Errorf("api: rehash emails: %w", err)
		}
		var batch []row
		var r row
		if _, err := pgx.ForEachRow(rows, []any{&r.org, &r.profile, &r.version, &r.env}, func() error {
			batch = append(batch, r)
			return nil
		}); err != nil {
			return done, fmt.Errorf("api: rehash emails: %w", err)
		}
		if len(batch) == 0 {
			if done > 0 {
				s.log.Info("api: profile emails MACed with email-mac", "profiles", done, "version", newest)
			}
			return done, nil
		}
		for _, r := range batch {
			email, err := s.hsm.Unseal(ctx, &r.env, []byte("loopcard profile email v1|"+uuidText(r.profile)))
			if err != nil {
				return done, fmt.Errorf("api: rehash email of profile %s: %w", uuidText(r.profile), err)
			}
			ver, mac, err := s.emailMAC(ctx, r.org, string(email))
			clear(email)
			if err != nil {
				return done, err
			}
			if _, err := s.pool.Exec(ctx, `UPDATE api_profiles SET email_mac = $4, email_mac_version = $5
				WHERE org_id = $1 AND profile_id = $2 AND email_mac_version = $3`, r.org, r.profile, r.version, mac, ver); err != nil {
				return done, fmt.Errorf("api: rehash email of profile %s: %w", uuidText(r.profile), err)
			}
			done++
		}
	}
}

func normalEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// validConsent accepts consent to ConsentProfile (and no unknown purpose)
// under a named notice version.
func validConsent(co apitype.Consent) bool {
	if !terminaltx.ValidID(co.Notice) || len(co.Purposes) == 0 {
		return false
	}
	for _, p := range co.Purposes {
		if p != apitype.ConsentProfile {
			return false
		}
	}
	return true
}

// ProfileTokenTTL is how long a cardholder's login lasts.
const ProfileTokenTTL = time.Hour

func validPassword(pw apitype.Secret) bool { return pw.Len() >= 10 && pw.Len() <= 200 }

// claimCard links the card to the profile of the email, made for it when
// the email has none, or to the existing profile when the password is
// right. Its answer (202, ClaimResponse) is the same whether the email had
// a profile, the password was wrong or the profile's password back-off
// held: the client logs in next, which succeeds only when the card is in
// the profile. The audit record says what happened.
func (s *Server) claimCard(c *call) error {
	var req apitype.ClaimRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	// The password is dropped with the request: its bytes and the body's.
	defer req.Password.Destroy()
	defer clear(c.body)
	org, card := c.who.org, c.who.card
	c.target = "card " + terminaltx.CardHex(card)
	addr, err := mail.ParseAddress(req.Email)
	if err != nil || addr.Address != strings.TrimSpace(req.Email) || len(req.Email) > 254 || !validPassword(req.Password) {
		return badRequest("a valid email and a password of 10 to 200 characters are required", nil)
	}
	if !validConsent(req.Consent) {
		return badRequest("consent to keep the email address (purpose profile) and the notice version are required", nil)
	}
	// A claimed card answers alike whatever the email: its profile logs in.
	if err := s.refuseClaimed(c, org, card); err != nil {
		return apiError(http.StatusConflict, "card already claimed by another profile", nil)
	}
	ver, eh, err := s.emailMAC(c.ctx, org, req.Email)
	if err != nil {
		return err
	}
	var profile pgtype.UUID
	err = s.pool.QueryRow(c.ctx, `SELECT profile_id FROM api_profiles WHERE org_id = $1 AND email_mac = $2 AND email_mac_version = $3`,
		org, eh, ver).Scan(&profile)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		hash, err := s.hashPassword(req.Password.Bytes())
		if err != nil {
			return fmt.Errorf("api: hash password: %w", err)
		}
		profile = newUUID()
		env, err := s.hsm.Seal(c.ctx, []byte(normalEmail(req.Email)), []byte("loopcard profile email v1|"+uuidText(profile)))
		if err != nil {
			return fmt.Errorf("api: seal email: %w", err)
		}
		tag, err := s.pool.Exec(c.ctx, `INSERT INTO api_profiles (org_id, profile_id, email_mac, email_mac_version, email_sealed, password_hash, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, email_mac) DO NOTHING`, org, profile, eh, ver, env, hash, s.now())
		if err != nil {
			return fmt.Errorf("api: create profile: %w", err)
		}
		if tag.RowsAffected() == 0 {
			// The same email claimed another card at the same moment.
			c.detail = "not claimed: a profile with this email was made meanwhile"
			return s.claimAnswer(c, card)
		}
		c.detail = "claimed by new profile " + uuidText(profile)
	case err != nil:
		return fmt.Errorf("api: profile: %w", err)
	default:
		// Adding a card to an existing profile needs its password, within
		// the profile's back-off.
		ok, err := s.profilePassword(c, org, profile, req.Password.Bytes())
		if err != nil {
			return err
		}
		if !ok {
			c.detail = "not claimed: " + c.detail
			return s.claimAnswer(c, card)
		}
		c.detail = "claimed by profile " + uuidText(profile)
	}
	tag, err := s.pool.Exec(c.ctx, `INSERT INTO api_profile_cards (org_id, card_id, profile_id, claimed_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, card_id) DO NOTHING`, org, card, profile, s.now())
	if err != nil {
		return fmt.Errorf("api: claim card: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return apiError(http.StatusConflict, "card already claimed by another profile", nil)
	}
	for _, p := range req.Consent.Purposes {
		if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_consents (org_id, profile_id, card_id, purpose, notice_version, given_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, profile_id, card_id, purpose)
			DO UPDATE SET notice_version = EXCLUDED.notice_version, given_at = EXCLUDED.given_at`,
			org, profile, card, p, req.Consent.Notice, s.now()); err != nil {
			return fmt.Errorf("api: record consent: %w", err)
		}
	}
	return s.claimAnswer(c, card)
}

// claimAnswer is the one answer of a claim that was not refused.
func (s *Server) claimAnswer(c *call, card []byte) error {
	return c.reply(http.StatusAccepted, apitype.ClaimResponse{Card: terminaltx.CardHex(card),
		Next: "log in with the email and password: the card is in the profile if the password was the profile's"})
}

// Password back-off of a profile: guesses are limited per profile, from
// any address.
const (
	// MaxLoginFailures is how many wrong passwords in a row lock a
	// profile's password.
	MaxLoginFailures = 5
	// LoginLockBase is the first lock; each further lock doubles it, up
	// to LoginLockMax. After a lock one guess is allowed before the next.
	LoginLockBase = time.Minute
	LoginLockMax  = 24 * time.Hour
)

// profilePassword checks pw against the profile's password within its
// back-off, and records the outcome. An attempt is taken from the budget
// before the password is checked, so concurrent guesses cannot exceed it;
// while the profile is locked every password, the right one too, is
// refused, after the same work as a check (the answer does not tell a
// lock from a wrong password). c.detail says which, for the audit record.
func (s *Server) profilePassword(c *call, org int64, profile pgtype.UUID, pw []byte) (bool, error) {
	now := s.now()
	stored := s.dummyHash()
	var failures int
	err := s.pool.QueryRow(c.ctx, `UPDATE api_profiles SET
			login_failures = CASE WHEN login_locked_until IS NOT NULL THEN $4 ELSE login_failures + 1 END,
			login_locked_until = NULL
		WHERE org_id = $1 AND profile_id = $2 AND
			((login_locked_until IS NULL AND login_failures < $4) OR (login_locked_until IS NOT NULL AND login_locked_until <= $3))
		RETURNING password_hash, login_failures`, org, profile, now, MaxLoginFailures).Scan(&stored, &failures)
	if errors.Is(err, pgx.ErrNoRows) {
		checkPassword(stored, pw) // as slow as a check
		s.metrics.Inc("login_locked")
		c.detail = "password refused: profile " + uuidText(profile) + " locked after too many wrong passwords"
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("api: password attempts: %w", err)
	}
	right := checkPassword(stored, pw)
	// The outcome is recorded even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	defer cancel()
	if right {
		if _, err := s.pool.Exec(ctx, `UPDATE api_profiles SET login_failures = 0, login_locks = 0, login_locked_until = NULL
			WHERE org_id = $1 AND profile_id = $2`, org, profile); err != nil {
			return false, fmt.Errorf("api: password attempts: %w", err)
		}
		return true, nil
	}
	s.metrics.Inc("login_failure")
	if failures >= MaxLoginFailures {
		var until time.Time
		if err := s.pool.QueryRow(ctx, `UPDATE api_profiles SET login_locks = login_locks + 1,
				login_locked_until = $3::timestamptz + make_interval(secs => least($4::float8 * power(2, login_locks), $5::float8))
			WHERE org_id = $1 AND profile_id = $2 RETURNING login_locked_until`,
			org, profile, now, LoginLockBase.Seconds(), LoginLockMax.Seconds()).Scan(&until); err != nil {
			return false, fmt.Errorf("api: password attempts: %w", err)
		}
		c.detail = fmt.Sprintf("wrong password for profile %s; locked until %s", uuidText(profile), until.UTC().Format(time.RFC3339))
	} else {
		c.detail = fmt.Sprintf("wrong password for profile %s (%d of %d)", uuidText(profile), failures, MaxLoginFailures)
	}
	return false, nil
}

func (s *Server) login(c *call) error {
	var req apitype.LoginRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	// The password is dropped with the request: its bytes and the body's.
	defer req.Password.Destroy()
	defer clear(c.body)
	if req.Org <= 0 || req.Email == "" || req.Password.IsZero() {
		return badRequest("org, email and password are required", nil)
	}
	c.who.org = req.Org
	ver, eh, err := s.emailMAC(c.ctx, req.Org, req.Email)
	if err != nil {
		return err
	}
	var profile pgtype.UUID
	err = s.pool.QueryRow(c.ctx, `SELECT profile_id FROM api_profiles WHERE org_id = $1 AND email_mac = $2 AND email_mac_version = $3`,
		req.Org, eh, ver).Scan(&profile)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("api: login: %w", err)
	}
	ok := false
	if profile.Valid {
		if ok, err = s.profilePassword(c, req.Org, profile, req.Password.Bytes()); err != nil {
			return err
		}
	} else {
		checkPassword(s.dummyHash(), req.Password.Bytes()) // as slow as for a known email
		s.metrics.Inc("login_failure")
	}
	if !ok {
		return apiError(http.StatusUnauthorized, "wrong email or password", nil)
	}
	tok, err := insertToken(c.ctx, s.pool, req.Org, RoleProfile, nil, profile, s.now().Add(ProfileTokenTTL))
	if err != nil {
		return err
	}
	c.who = principal{role: RoleProfile, org: req.Org, profile: profile, tokenID: tok.ID}
	return c.reply(http.StatusOK, apitype.LoginResponse{Profile: uuidText(profile), Token: tok.Reveal(), ExpiresAt: tok.Expires})
}

// logout revokes the profile token the request was sent with; the
// profile's other logins stay.
func (s *Server) logout(c *call) error {
	c.target = "profile " + uuidText(c.who.profile)
	if _, err := s.pool.Exec(c.ctx, `UPDATE api_tokens SET revoked_at = $4
		WHERE org_id = $1 AND token_id = $2 AND profile_id = $3 AND role = 'profile' AND revoked_at IS NULL`,
		c.who.org, c.who.tokenID, c.who.profile, s.now()); err != nil {
		return fmt.Errorf("api: logout: %w", err)
	}
	return c.reply(http.StatusOK, apitype.LogoutResponse{LoggedOut: true})
}

func (s *Server) exportProfile(c *call) error {
	org, profile := c.who.org, c.who.profile
	c.target = "profile " + uuidText(profile)
	var env keys.Envelope
	var ex apitype.ProfileExport
	if err := s.pool.QueryRow(c.ctx, `SELECT email_sealed, created_at FROM api_profiles WHERE org_id = $1 AND profile_id = $2`,
		org, profile).Scan(&env, &ex.CreatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound
		}
		return fmt.Errorf("api: export: %w", err)
	}
	email, err := s.hsm.Unseal(c.ctx, &env, []byte("loopcard profile email v1|"+uuidText(profile)))
	if err != nil {
		return fmt.Errorf("api: unseal email: %w", err)
	}
	ex.Profile, ex.Email = uuidText(profile), string(email)
	rows, err := s.pool.Query(c.ctx, `SELECT card_id FROM api_profile_cards WHERE org_id = $1 AND profile_id = $2 ORDER BY claimed_at`, org, profile)
	if err != nil {
		return fmt.Errorf("api: export: %w", err)
	}
	cards, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("api: export: %w", err)
	}
	ex.Cards, ex.Refunds = []apitype.History{}, []apitype.ExportedRefund{}
	for _, card := range cards {
		h, err := s.history(c, org, card)
		if err != nil {
			return err
		}
		if h.AutoTopUp, err = s.autoTopUpOf(c, org, card); err != nil {
			return err
		}
		ex.Cards = append(ex.Cards, h)
	}
	// The refund requests this profile made; one made for its card before
	// the claim, with the QR token and PIN, is the data of whoever held
	// the card then.
	rows, err = s.pool.Query(c.ctx, `SELECT request_id, card_id, amount, status, payout_sealed FROM api_refund_requests
		WHERE org_id = $1 AND profile_id = $2 AND payout_sealed IS NOT NULL ORDER BY requested_at`, org, profile)
	if err != nil {
		return fmt.Errorf("api: export: %w", err)
	}
	var id pgtype.UUID
	var card []byte
	var r apitype.ExportedRefund
	var penv keys.Envelope
	if _, err := pgx.ForEachRow(rows, []any{&id, &card, &r.Amount, &r.Status, &penv}, func() error {
		plain, err := s.hsm.Unseal(c.ctx, &penv, []byte("loopcard refund v1|"+uuidText(id)))
		if err != nil {
			return err
		}
		defer clear(plain)
		r.Payout = apitype.RefundRequest{}
		if err := json.Unmarshal(plain, &r.Payout); err != nil {
			return err
		}
		r.ID, r.Card = uuidText(id), terminaltx.CardHex(card)
		ex.Refunds = append(ex.Refunds, r)
		return nil
	}); err != nil {
		return fmt.Errorf("api: export refunds: %w", err)
	}
	rows, err = s.pool.Query(c.ctx, `SELECT card_id, purpose, notice_version, given_at FROM api_consents
		WHERE org_id = $1 AND profile_id = $2 ORDER BY given_at, card_id, purpose`, org, profile)
	if err != nil {
		return fmt.Errorf("api: export consents: %w", err)
	}
	ex.Consents = []apitype.ExportedConsent{}
	var co apitype.ExportedConsent
	if _, err := pgx.ForEachRow(rows, []any{&card, &co.Purpose, &co.Notice, &co.GivenAt}, func() error {
		co.Card = terminaltx.CardHex(card)
		ex.Consents = append(ex.Consents, co)
		return nil
	}); err != nil {
		return fmt.Errorf("api: export consents: %w", err)
	}
	return c.reply(http.StatusOK, ex)
}

// eraseProfile deletes a profile's personal data (GDPR article 17): the
// sealed email, the password hash, the link to its cards, its recorded
// consents, the API's copy of the payout details of the refund requests it
// made (not those made for its cards before its claim, which are another
// holder's) and its tokens; its cards' auto top-ups stop and forget the
// provider's customer and method ids. Transactions stay, keyed by card id only, which nothing links to a person any more.
// (The ledger keeps the holder and IBAN of a requested refund until it is
// paid out: that copy is the ledger's to erase after payout.)
func (s *Server) eraseProfile(c *call) error {
	org, profile := c.who.org, c.who.profile
	c.target = "profile " + uuidText(profile)
	// The cards' auto top-ups stop, and the provider's customer and
	// method ids go (first: an erasure sent again finishes the rest).
	rows, err := s.pool.Query(c.ctx, `SELECT card_id FROM api_profile_cards WHERE org_id = $1 AND profile_id = $2`, org, profile)
	if err != nil {
		return fmt.Errorf("api: erase profile: %w", err)
	}
	cards, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return fmt.Errorf("api: erase profile: %w", err)
	}
	for _, card := range cards {
		if err := s.ledger.ForgetAutoTopUp(c.ctx, org, card); err != nil {
			return err
		}
	}
	err = pgx.BeginFunc(c.ctx, s.pool, func(tx pgx.Tx) error {
		// Payout details go; an open request cannot be paid without them.
		if _, err := tx.Exec(c.ctx, `UPDATE api_refund_requests SET payout_sealed = NULL,
				status = CASE WHEN status = 'requested' THEN 'cancelled' ELSE status END
			WHERE org_id = $1 AND profile_id = $2`, org, profile); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM api_profile_cards WHERE org_id = $1 AND profile_id = $2`,
			`DELETE FROM api_consents WHERE org_id = $1 AND profile_id = $2`,
			`DELETE FROM api_profiles WHERE org_id = $1 AND profile_id = $2`,
			`DELETE FROM api_tokens WHERE org_id = $1 AND profile_id = $2`,
		} {
			if _, err := tx.Exec(c.ctx, q, org, profile); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("api: erase profile: %w", err)
	}
	return c.reply(http.StatusOK, map[string]any{"profile": uuidText(profile), "erased": true})
}
