package api

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/httpsig"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/qrpin"
)

// principal is who a request is from. It holds no secret: the card is
// named by its id (UID), a token by the first bytes of its hash.
type principal struct {
	role     Role
	org      int64
	store    string      // RoleStore
	tokenID  string      // staff and profile tokens
	staff    string      // a staff account signed in to the console
	terminal string      // RoleTerminal
	card     []byte      // RoleCard, RoleCardPIN
	profile  pgtype.UUID // RoleProfile
}

// actor names the principal in logs and audit records.
func (p principal) actor() string {
	switch p.role {
	case "", RoleAnonymous:
		return "anonymous"
	case RoleTerminal:
		return fmt.Sprintf("terminal:%d:%s", p.org, p.terminal)
	case RoleCard, RoleCardPIN:
		return fmt.Sprintf("%s:%d:%s", p.role, p.org, terminaltx.CardHex(p.card))
	}
	if p.staff != "" {
		return fmt.Sprintf("%s:%d:staff:%s", p.role, p.org, p.staff)
	}
	return fmt.Sprintf("%s:%d:%s", p.role, p.org, p.tokenID)
}

// authenticate finds out who sent the request. Credentials that are
// present but wrong fail with 401; no credentials is RoleAnonymous.
func (s *Server) authenticate(c *call) (principal, error) {
	r := c.r
	// A console page's in-process request carries the principal of its
	// staff session (consoleBackend); nothing outside this package can
	// set it, and such a request carries no other credential.
	if p, ok := r.Context().Value(staffPrincipalKey{}).(principal); ok {
		return p, nil
	}
	if r.Header.Get("Signature-Input") != "" || r.Header.Get("Signature") != "" {
		return s.authTerminal(c)
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		if r.Header.Get(apitype.HeaderPIN) != "" {
			return principal{}, apiError(http.StatusUnauthorized, "a PIN needs the card's token", nil)
		}
		return principal{role: RoleAnonymous}, nil
	}
	scheme, cred, _ := strings.Cut(authz, " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		return s.authBearer(c, strings.TrimSpace(cred))
	case "card":
		return s.authCard(c, strings.TrimSpace(cred))
	}
	return principal{}, apiError(http.StatusUnauthorized, "unknown authorization scheme", nil)
}

// Bearer tokens read "lc1_ORG_SECRET": the organizer in clear (every table
// is keyed by organizer first) and 32 random bytes in base64url.
const tokenPrefix = "lc1_"

func parseBearer(tok string) (org int64, hash []byte, ok bool) {
	rest, found := strings.CutPrefix(tok, tokenPrefix)
	if !found {
		return 0, nil, false
	}
	orgText, secret, found := strings.Cut(rest, "_")
	if !found {
		return 0, nil, false
	}
	org, err := strconv.ParseInt(orgText, 10, 64)
	if err != nil || org <= 0 || strconv.FormatInt(org, 10) != orgText {
		return 0, nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(b) != 32 {
		return 0, nil, false
	}
	h := sha256.Sum256([]byte(tok))
	clear(b)
	return org, h[:], true
}

func (s *Server) authBearer(c *call, tok string) (principal, error) {
	org, hash, ok := parseBearer(tok)
	if !ok {
		return principal{}, apiError(http.StatusUnauthorized, "invalid token", nil)
	}
	p := principal{org: org}
	var store *string
	var role string
	err := s.pool.QueryRow(c.ctx, `SELECT role, store_id, profile_id, token_id FROM api_tokens
		WHERE org_id = $1 AND token_hash = $2 AND revoked_at IS NULL AND expires_at > $3`, org, hash, s.now()).
		Scan(&role, &store, &p.profile, &p.tokenID)
	if errors.Is(err, pgx.ErrNoRows) {
		// Unknown, revoked or expired: for good (credGuard).
		c.cred.failed = bearerCredential(hash).key
		return principal{}, apiError(http.StatusUnauthorized, "invalid or expired token", nil)
	}
	if err != nil {
		return principal{}, fmt.Errorf("api: token lookup: %w", err)
	}
	p.role = Role(role)
	if store != nil {
		p.store = *store
	}
	return p, nil
}

// cardRow is what the API needs of a personalized card.
type cardRow struct {
	org  int64
	uid  []byte
	pvv  keys.PVV
	hash []byte
}

func (s *Server) authCard(c *call, cred string) (principal, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cred)
	if err != nil || len(raw) != qrpin.TokenSize {
		return principal{}, apiError(http.StatusUnauthorized, "invalid card token", nil)
	}
	tok, err := qrpin.NewToken(raw)
	clear(raw)
	if err != nil {
		return principal{}, apiError(http.StatusUnauthorized, "invalid card token", nil)
	}
	defer tok.Destroy()
	card, err := s.cardByTokenHash(c, tok.Hash())
	if err != nil {
		return principal{}, err
	}
	p := principal{role: RoleCard, org: card.org, card: card.uid}
	pinText := c.r.Header.Get(apitype.HeaderPIN)
	if pinText == "" {
		return p, nil
	}
	// The principal is known from here on, for audit and alerts.
	c.who = p
	if err := s.checkPIN(c, card, pinText); err != nil {
		return principal{}, err
	}
	p.role = RoleCardPIN
	return p, nil
}

// cardByTokenHash finds a finished card by the hash of its QR token.
func (s *Server) cardByTokenHash(c *call, hash []byte) (cardRow, error) {
	if cr, ok := s.cards.get(hash, s.now()); ok {
		return cr, nil
	}
	tc, err := s.batches.CardByTokenHash(c.ctx, hash)
	if errors.Is(err, batch.ErrNotFound) {
		return cardRow{hash: hash}, apiError(http.StatusUnauthorized, "invalid card token", nil)
	}
	if err != nil {
		return cardRow{hash: hash}, fmt.Errorf("api: card lookup: %w", err)
	}
	cr := cardRow{org: tc.Org, uid: tc.UID, pvv: keys.PVV{KeyVersion: tc.PVVKeyVersion, MAC: tc.PVV}, hash: hash}
	s.cards.put(cr, s.now())
	return cr, nil
}

// cardCache remembers finished cards by token hash for a minute: a card's
// token and PIN verification value do not change once it is finished, and
// balance lookups come in bursts.
type cardCache struct {
	mu sync.Mutex
	m  map[string]cachedCard
}

type cachedCard struct {
	row     cardRow
	fetched time.Time
}

const (
	cardCacheTTL  = time.Minute
	cardCacheSize = 100_000
)

func (cc *cardCache) get(hash []byte, now time.Time) (cardRow, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[string(hash)]
	if !ok || now.Sub(e.fetched) > cardCacheTTL || now.Before(e.fetched) {
		return cardRow{}, false
	}
	return e.row, true
}

func (cc *cardCache) put(row cardRow, now time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil || len(cc.m) >= cardCacheSize {
		cc.m = make(map[string]cachedCard)
	}
	cc.m[string(row.hash)] = cachedCard{row: row, fetched: now}
}

// terminalKeyRow is an enrolled terminal's keys and status.
type terminalKeyRow struct {
	status   string
	signing  ed25519.PublicKey
	merchant string
}

// parseKeyID reads a terminal's key id "ORG:TERMINAL".
func parseKeyID(id string) (int64, string, bool) {
	orgText, term, ok := strings.Cut(id, ":")
	if !ok || !terminaltx.ValidID(term) {
		return 0, "", false
	}
	org, err := strconv.ParseInt(orgText, 10, 64)
	if err != nil || org <= 0 || strconv.FormatInt(org, 10) != orgText {
		return 0, "", false
	}
	return org, term, true
}

// KeyID is the key id a terminal signs its requests with.
func KeyID(org int64, terminal string) string { return fmt.Sprintf("%d:%s", org, terminal) }

// terminalKeys reads a terminal's signing key and status from the ledger:
// all that authenticates a request.
func (s *Server) terminalKeys(c *call, org int64, terminal string) (terminalKeyRow, error) {
	var k terminalKeyRow
	tk, err := s.ledger.TerminalKey(c.ctx, org, terminal)
	if errors.Is(err, ledger.ErrNotFound) {
		return k, errBadSignature
	}
	if err != nil {
		return k, fmt.Errorf("api: terminal lookup: %w", err)
	}
	k.status, k.signing, k.merchant = tk.Status, tk.PublicKey, tk.Merchant
	return k, nil
}

// terminalKex reads the caller's key-agreement key (api_terminal_keys),
// which only the routes that deliver keys need: an upload does not pay
// for it. A terminal without one gets 409.
func (s *Server) terminalKex(c *call) (alg string, pub []byte, err error) {
	err = s.pool.QueryRow(c.ctx, `SELECT kex_alg, kex_public FROM api_terminal_keys WHERE org_id = $1 AND terminal_id = $2`,
		c.who.org, c.who.terminal).Scan(&alg, &pub)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && alg == "") {
		return "", nil, apiError(http.StatusConflict, "terminal has no key-agreement key: enrol it again", nil)
	}
	if err != nil {
		return "", nil, fmt.Errorf("api: terminal key-agreement key: %w", err)
	}
	return alg, pub, nil
}

func (s *Server) authTerminal(c *call) (principal, error) {
	var p principal
	var keyRow terminalKeyRow
	// The signature is checked over the headers: the body is not read
	// yet (checkDigest checks it once it is).
	params, err := httpsig.VerifyHeaders(c.r, httpsig.VerifyOptions{MaxAge: s.limits.SignatureMaxAge, Now: s.now},
		func(keyID string) (ed25519.PublicKey, error) {
			org, term, ok := parseKeyID(keyID)
			if !ok {
				c.cred.failed = terminalCredential(keyID).key
				return nil, errBadSignature
			}
			k, err := s.terminalKeys(c, org, term)
			if errors.Is(err, errBadSignature) {
				// No such terminal (credGuard; its enrolment forgets it).
				c.cred.failed = terminalCredential(keyID).key
			}
			if err != nil {
				return nil, err
			}
			p = principal{role: RoleTerminal, org: org, terminal: term}
			keyRow = k
			return k.signing, nil
		})
	if err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return principal{}, err
		}
		if errors.Is(err, httpsig.ErrStale) {
			return principal{}, apiError(http.StatusUnauthorized, "stale request signature", err)
		}
		if errors.Is(err, httpsig.ErrMissing) || errors.Is(err, httpsig.ErrMalformed) ||
			errors.Is(err, httpsig.ErrDigest) || errors.Is(err, httpsig.ErrSignature) {
			return principal{}, apiError(http.StatusUnauthorized, "bad request signature", err)
		}
		return principal{}, err
	}
	c.who = p
	if keyRow.status != ledger.TerminalEnrolled {
		c.cred.failed = terminalCredential(params.KeyID).key
		if keyRow.status == ledger.TerminalRevoked {
			s.raiseAlert(c, "revoked_terminal", "a revoked terminal sent a validly signed request")
		}
		return principal{}, apiError(http.StatusUnauthorized, "terminal is not active", nil)
	}
	if err := s.checkClientCert(c, params.KeyID); err != nil {
		return principal{}, err
	}
	// The nonce is kept until the signature would be refused as stale, so
	// a replay is refused by one or the other.
	tag, err := s.pool.Exec(c.ctx, `INSERT INTO api_nonces (org_id, key_id, nonce, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, p.org, params.KeyID, params.Nonce, params.Created.Add(s.limits.SignatureMaxAge+time.Minute))
	if err != nil {
		return principal{}, fmt.Errorf("api: nonce: %w", err)
	}
	if tag.RowsAffected() == 0 {
		s.metrics.Inc("replay_refused")
		return principal{}, errReplay
	}
	return p, nil
}

// checkDigest checks, once the body is read, that a terminal's request
// carries the body its signature covers (Content-Digest).
func checkDigest(c *call) error {
	if c.who.role != RoleTerminal {
		return nil
	}
	if err := httpsig.CheckDigest(c.r, c.body); err != nil {
		return apiError(http.StatusUnauthorized, "bad request signature", err)
	}
	return nil
}

// checkClientCert refuses a request whose TLS client certificate (which
// the TLS layer verified against the local CA) names another terminal.
func (s *Server) checkClientCert(c *call, keyID string) error {
	if c.r.TLS == nil || len(c.r.TLS.VerifiedChains) == 0 {
		return nil
	}
	if cn := c.r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != keyID {
		return apiError(http.StatusUnauthorized, "client certificate names another terminal", nil)
	}
	return nil
}

// tokenIDOf is how audit records name a token: its hash's first 8 bytes.
func tokenIDOf(hash []byte) string { return hex.EncodeToString(hash[:8]) }
