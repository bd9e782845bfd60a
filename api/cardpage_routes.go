package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/cardpage"
	"github.com/loopcard/loopcard/api/internal/httpstatus"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/personalize/qrpin"
)

// withCardPages puts the cardholder pages (package cardpage: /c/{token},
// /account, /privacy and their assets) in front of the API handler h.
// The pages have their own headers (a strict CSP for HTML) and their own
// access log, which names routes and never the path with the card's
// token; everything they show or change goes through h, the API's whole
// chain (rate limits, PIN lockout, authorization, audit), as a request
// from the cardholder's address. A page request (not its stylesheet or
// script) counts against the API's limit per address and its anonymous
// budget as well.
func (s *Server) withCardPages(h http.Handler) (http.Handler, error) {
	cp := &cardPages{s: s, api: h, backend: &cardBackend{s: s, api: h}}
	var origins []string
	if p := s.payments; p != nil {
		cp.backend.topUps = p.TopUps
		if p.Origin != "" {
			origins = []string{p.Origin}
		}
	}
	pages, err := cardpage.New(cardpage.Options{Backend: cp.backend, Logger: s.log, ProviderOrigins: origins})
	if err != nil {
		return nil, fmt.Errorf("api: card pages: %w", err)
	}
	cp.pages = pages
	return cp, nil
}

// cardPageRoute is the route label of the card pages in metrics.
const cardPageRoute = "cardpage"

// cardPages is the handler in front of the API.
type cardPages struct {
	s       *Server
	api     http.Handler
	backend *cardBackend
	pages   *cardpage.Handler
}

func (cp *cardPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := cp.s
	if !cardpage.Serves(r.URL.Path) {
		cp.api.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	done := s.metrics.Start()
	defer done()
	sw := &httpstatus.Writer{ResponseWriter: w}
	defer func() {
		status := sw.Status
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.Observe(cardPageRoute, r.Method, status, time.Since(start))
	}()
	// The pages read the database themselves before the API is asked
	// (a card's organizer, whether it is claimed): the API's limit per
	// address and its anonymous budget hold for them too, checked first.
	// The API requests a page then makes are not charged to the budget
	// again.
	if !strings.HasPrefix(r.URL.Path, "/assets/") {
		// No credential opens a page: a forged one takes its token too.
		if why, _ := s.admission(r, remoteIP(r), false, false); why != "" {
			s.metrics.RequestRefused(why)
			if r.ContentLength != 0 && r.ProtoMajor == 1 {
				sw.Header().Set("Connection", "close")
			}
			sw.Header().Set("Retry-After", "1")
			http.Error(sw, "too many requests", http.StatusTooManyRequests)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), admittedKey{}, true))
	}
	cp.pages.ServeHTTP(sw, r)
}

// TopUpStarter starts an online top-up of a card (hex id) with a payment
// provider and returns the address of the provider's page; the provider
// sends the cardholder back to returnURL. checkout.Provider, the local
// test provider, is one.
type TopUpStarter interface {
	Start(ctx context.Context, org int64, card string, amount int64, returnURL string) (string, error)
}

// cardBackend is the API as the pages see it: each call is one request
// through the API's handler, in process. What the API has no route for
// (pending loads, whether a card is claimed, a card's organizer) is read
// here.
type cardBackend struct {
	s      *Server
	api    http.Handler
	topUps TopUpStarter // nil: no online top-up
}

// recorder keeps an in-process response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// apiCall is one in-process request.
type apiCall struct {
	method, path string
	auth         string // Authorization header
	pin          cardpage.Secret
	in           any // JSON body
}

// do sends c through the API and decodes the answer into out (or copies
// it, for a *[]byte). A refusal is mapped to cardpage's errors.
func (b *cardBackend) do(ctx context.Context, from string, c apiCall, out any) error {
	var body []byte
	if c.in != nil {
		var err error
		if body, err = json.Marshal(c.in); err != nil {
			return fmt.Errorf("api: card page request: %w", err)
		}
		defer clear(body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, c.path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("api: card page request: %w", err)
	}
	req.RemoteAddr = from
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if !c.pin.IsZero() {
		req.Header.Set(apitype.HeaderPIN, c.pin.Reveal())
	}
	rec := &recorder{header: http.Header{}}
	b.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var eb errorBody
		_ = json.Unmarshal(rec.body.Bytes(), &eb)
		return pageError(c, rec.status, eb)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = bytes.Clone(rec.body.Bytes())
		return nil
	default:
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return fmt.Errorf("api: card page: %s %s answer: %w", c.method, c.path, err)
		}
		return nil
	}
}

// pageError maps an API refusal to what the pages explain; the API's
// public messages are matched where one status has several meanings.
func pageError(c apiCall, status int, eb errorBody) error {
	switch eb.Error {
	case errCardLocked.Public:
		return cardpage.ErrLocked
	case errWrongPIN.Public:
		return cardpage.ErrWrongPIN
	case errClaimed.Public:
		return cardpage.ErrClaimed
	case "invalid card token":
		return cardpage.ErrUnknownCard
	case "a PIN is 6 digits":
		return cardpage.ErrPINFormat
	case "wrong email or password":
		return cardpage.ErrLoginFailed
	case "invalid token", "invalid or expired token":
		return cardpage.ErrSessionEnded
	case "card is not active", "card is blocked", errBlockNotActive:
		return cardpage.ErrNotActive
	case "nothing to refund":
		return cardpage.ErrNothingToRefund
	case "a refund is already requested for this card":
		return cardpage.ErrRefundExists
	case "card already claimed by another profile":
		return cardpage.ErrClaimedByOther
	case errVoucherPublic:
		return cardpage.ErrVoucher
	}
	switch status {
	case http.StatusTooManyRequests:
		return cardpage.ErrBusy
	case http.StatusBadRequest, http.StatusForbidden:
		return cardpage.ErrInvalid
	case http.StatusNotFound:
		return cardpage.ErrUnknownCard
	}
	return fmt.Errorf("api: card page: %s %s: %d %s (request %s)", c.method, c.path, status, eb.Error, eb.RequestID)
}

// claimWire and loginWire are ClaimRequest and LoginRequest as the pages
// send them (a Secret does not encode).
type claimWire struct {
	Email    string          `json:"email"`
	Password string          `json:"password"`
	Consent  apitype.Consent `json:"consent"`
}

type loginWire struct {
	Org      int64  `json:"org"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// cardOf finds the card of a QR token.
func (b *cardBackend) cardOf(ctx context.Context, tok cardpage.Secret) (cardRow, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok.Reveal())
	if err != nil || len(raw) != qrpin.TokenSize {
		return cardRow{}, cardpage.ErrUnknownCard
	}
	t, err := qrpin.NewToken(raw)
	clear(raw)
	if err != nil {
		return cardRow{}, cardpage.ErrUnknownCard
	}
	defer t.Destroy()
	cr, err := b.s.cardByTokenHash(&call{ctx: ctx}, t.Hash())
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		return cardRow{}, cardpage.ErrUnknownCard
	}
	return cr, err
}

// extras reads what GET /v1/card does not say: pending online loads and
// whether a profile claimed the card.
func (b *cardBackend) extras(ctx context.Context, cr cardRow, c *cardpage.Card) error {
	loads, err := b.s.ledger.PendingLoads(ctx, cr.org, cr.uid)
	if err != nil {
		return fmt.Errorf("api: card page: %w", err)
	}
	c.Pending, c.PendingCount = 0, 0
	for _, l := range loads {
		c.Pending += l.Amount
		c.PendingCount++
	}
	err = b.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_profile_cards WHERE org_id = $1 AND card_id = $2)`,
		cr.org, cr.uid).Scan(&c.Claimed)
	if err != nil {
		return fmt.Errorf("api: card page: %w", err)
	}
	return nil
}

func cardAuth(tok cardpage.Secret) string { return "Card " + tok.Reveal() }

func bearer(s cardpage.Secret) string { return "Bearer " + s.Reveal() }

func pageCard(st apitype.CardStatus) cardpage.Card {
	c := cardpage.Card{ID: st.Card, Event: st.Event, Status: st.Status, Balance: st.Balance, NonRefundable: st.NonRefundable}
	if r := st.Refund; r != nil {
		c.Refund = r.Status
		if r.Amount != nil {
			c.RefundAmount = *r.Amount
		}
	}
	return c
}

// pageHistory merges payments and top-ups, newest first.
func pageHistory(h apitype.History) cardpage.History {
	out := cardpage.History{Card: pageCard(h.CardStatus)}
	for _, p := range h.Payments {
		out.Entries = append(out.Entries, cardpage.Entry{At: p.At, Where: p.Merchant, Amount: -p.Amount, Status: p.Status})
	}
	for _, t := range h.TopUps {
		out.Entries = append(out.Entries, cardpage.Entry{At: t.At, TopUp: true, Where: t.Channel, Amount: t.Amount, Status: t.Status})
		if t.Status == "pending" {
			out.Pending += t.Amount
			out.PendingCount++
		}
	}
	slices.SortStableFunc(out.Entries, func(a, b cardpage.Entry) int { return b.At.Compare(a.At) })
	return out
}

func (b *cardBackend) Card(ctx context.Context, from string, tok cardpage.Secret) (cardpage.Card, error) {
	cr, err := b.cardOf(ctx, tok)
	if err != nil {
		return cardpage.Card{}, err
	}
	var st apitype.CardStatus
	if err := b.do(ctx, from, apiCall{method: "GET", path: "/v1/card", auth: cardAuth(tok)}, &st); err != nil {
		return cardpage.Card{}, err
	}
	c := pageCard(st)
	return c, b.extras(ctx, cr, &c)
}

func (b *cardBackend) History(ctx context.Context, from string, tok, pin cardpage.Secret) (cardpage.History, error) {
	if pin.IsZero() {
		return cardpage.History{}, cardpage.ErrPINFormat
	}
	cr, err := b.cardOf(ctx, tok)
	if err != nil {
		return cardpage.History{}, err
	}
	// A claimed card's history is its profile's: the QR code and the PIN
	// no longer show it (and no PIN is tried).
	var c cardpage.Card
	if err := b.extras(ctx, cr, &c); err != nil {
		return cardpage.History{}, err
	}
	if c.Claimed {
		return cardpage.History{}, cardpage.ErrClaimed
	}
	var h apitype.History
	if err := b.do(ctx, from, apiCall{method: "GET", path: "/v1/card/history", auth: cardAuth(tok), pin: pin}, &h); err != nil {
		return cardpage.History{}, err
	}
	return pageHistory(h), nil
}

func (b *cardBackend) Refund(ctx context.Context, from string, tok, pin cardpage.Secret, p cardpage.Payout) (cardpage.RefundReceipt, error) {
	if pin.IsZero() {
		return cardpage.RefundReceipt{}, cardpage.ErrPINFormat
	}
	var rr apitype.RefundResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/card/refund", auth: cardAuth(tok), pin: pin,
		in: apitype.RefundRequest{Name: p.Name, IBAN: p.IBAN}}, &rr); err != nil {
		return cardpage.RefundReceipt{}, err
	}
	return cardpage.RefundReceipt{ID: rr.ID, Amount: rr.Credit, Status: rr.Status}, nil
}

func (b *cardBackend) Block(ctx context.Context, from string, tok, pin cardpage.Secret, reason string) error {
	if pin.IsZero() {
		return cardpage.ErrPINFormat
	}
	return b.do(ctx, from, apiCall{method: "POST", path: "/v1/card/block", auth: cardAuth(tok), pin: pin,
		in: apitype.BlockRequest{Reason: reason}}, nil)
}

func (b *cardBackend) ProfileBlock(ctx context.Context, from string, s cardpage.Secret, card, reason string) error {
	if _, ok := parseCardID(card); !ok {
		return cardpage.ErrInvalid
	}
	return b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/cards/" + url.PathEscape(card) + "/block", auth: bearer(s),
		in: apitype.BlockRequest{Reason: reason}}, nil)
}

func (b *cardBackend) Claim(ctx context.Context, from string, tok, pin cardpage.Secret, c cardpage.Credentials) (cardpage.Secret, error) {
	if pin.IsZero() {
		return cardpage.Secret{}, cardpage.ErrPINFormat
	}
	var co apitype.Consent
	if c.Consent {
		co = apitype.Consent{Purposes: []string{apitype.ConsentProfile}, Notice: cardpage.NoticeVersion}
	}
	cr, err := b.cardOf(ctx, tok)
	if err != nil {
		return cardpage.Secret{}, err
	}
	// The claim answers alike whether or not it linked the card; logging
	// in with the same email and password tells the cardholder.
	var cl apitype.ClaimResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/card/claim", auth: cardAuth(tok), pin: pin,
		in: claimWire{Email: c.Email, Password: c.Password.Reveal(), Consent: co}}, &cl); err != nil {
		return cardpage.Secret{}, err
	}
	var lr apitype.LoginResponse
	err = b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/login",
		in: loginWire{Org: cr.org, Email: c.Email, Password: c.Password.Reveal()}}, &lr)
	if errors.Is(err, cardpage.ErrLoginFailed) {
		return cardpage.Secret{}, cardpage.ErrClaimNotAdded
	}
	if err != nil {
		return cardpage.Secret{}, err
	}
	return cardpage.NewSecret(lr.Token), nil
}

func (b *cardBackend) Login(ctx context.Context, from string, tok cardpage.Secret, c cardpage.Credentials) (cardpage.Secret, error) {
	cr, err := b.cardOf(ctx, tok)
	if err != nil {
		return cardpage.Secret{}, err
	}
	if c.Email == "" || c.Password.IsZero() {
		return cardpage.Secret{}, cardpage.ErrLoginFailed
	}
	var lr apitype.LoginResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/login",
		in: loginWire{Org: cr.org, Email: c.Email, Password: c.Password.Reveal()}}, &lr); err != nil {
		return cardpage.Secret{}, err
	}
	return cardpage.NewSecret(lr.Token), nil
}

func (b *cardBackend) Profile(ctx context.Context, from string, s cardpage.Secret) (cardpage.Profile, error) {
	var ex apitype.ProfileExport
	if err := b.do(ctx, from, apiCall{method: "GET", path: "/v1/profile", auth: bearer(s)}, &ex); err != nil {
		return cardpage.Profile{}, err
	}
	p := cardpage.Profile{Email: ex.Email, Since: ex.CreatedAt}
	for _, h := range ex.Cards {
		ph := pageHistory(h)
		if a := h.AutoTopUp; a != nil {
			ph.AutoTopUp = &cardpage.AutoTopUp{Amount: a.Amount, Threshold: a.Threshold, DailyLimit: a.DailyLimit, Status: a.Status, Reason: a.Reason}
			for _, ch := range a.Charges {
				ph.AutoTopUp.Charges = append(ph.AutoTopUp.Charges, cardpage.AutoTopUpCharge{At: ch.At, Amount: ch.Amount, Status: ch.Status, Reason: ch.Reason})
			}
		}
		p.Cards = append(p.Cards, ph)
	}
	for _, r := range ex.Refunds {
		p.Refunds = append(p.Refunds, cardpage.RefundReceipt{ID: r.ID, Card: r.Card, Amount: r.Amount, Status: r.Status})
	}
	return p, nil
}

func (b *cardBackend) ProfileRefund(ctx context.Context, from string, s cardpage.Secret, card string, p cardpage.Payout) (cardpage.RefundReceipt, error) {
	if _, ok := parseCardID(card); !ok {
		return cardpage.RefundReceipt{}, cardpage.ErrInvalid
	}
	var rr apitype.RefundResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/cards/" + url.PathEscape(card) + "/refund", auth: bearer(s),
		in: apitype.RefundRequest{Name: p.Name, IBAN: p.IBAN}}, &rr); err != nil {
		return cardpage.RefundReceipt{}, err
	}
	return cardpage.RefundReceipt{ID: rr.ID, Amount: rr.Credit, Status: rr.Status}, nil
}

// SetAutoTopUp sets a card's auto top-up (POST
// /v1/profile/cards/{card}/autotopup) and returns the provider's page.
func (b *cardBackend) SetAutoTopUp(ctx context.Context, from string, s cardpage.Secret, card string, a cardpage.AutoTopUp, origin string) (string, error) {
	if _, ok := parseCardID(card); !ok {
		return "", cardpage.ErrInvalid
	}
	var out apitype.AutoTopUpResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/cards/" + url.PathEscape(card) + "/autotopup", auth: bearer(s),
		in: apitype.AutoTopUpRequest{Amount: a.Amount, Threshold: a.Threshold, DailyLimit: a.DailyLimit,
			ReturnURL: cardpage.AutoTopUpReturnURL(origin)}}, &out); err != nil {
		return "", err
	}
	return out.URL, nil
}

// StopAutoTopUp turns a card's auto top-up off (DELETE
// /v1/profile/cards/{card}/autotopup).
func (b *cardBackend) StopAutoTopUp(ctx context.Context, from string, s cardpage.Secret, card string) error {
	if _, ok := parseCardID(card); !ok {
		return cardpage.ErrInvalid
	}
	return b.do(ctx, from, apiCall{method: "DELETE", path: "/v1/profile/cards/" + url.PathEscape(card) + "/autotopup", auth: bearer(s)}, nil)
}

func (b *cardBackend) Export(ctx context.Context, from string, s cardpage.Secret) ([]byte, error) {
	var raw []byte
	if err := b.do(ctx, from, apiCall{method: "GET", path: "/v1/profile", auth: bearer(s)}, &raw); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, fmt.Errorf("api: card page export: %w", err)
	}
	return out.Bytes(), nil
}

func (b *cardBackend) Erase(ctx context.Context, from string, s cardpage.Secret) error {
	return b.do(ctx, from, apiCall{method: "DELETE", path: "/v1/profile", auth: bearer(s)}, nil)
}

// Logout revokes the profile's token (POST /v1/profile/logout).
func (b *cardBackend) Logout(ctx context.Context, from string, s cardpage.Secret) error {
	return b.do(ctx, from, apiCall{method: "POST", path: "/v1/profile/logout", auth: bearer(s)}, nil)
}

// CheckoutTTL is how long a top-up's checkout id finds its card on the
// way back from the provider (api_checkouts).
const CheckoutTTL = cardpage.TopUpReturnTTL

// StartTopUp starts a top-up with the provider of Config.Payments. The
// provider gets an opaque checkout id in its return address, mapped to
// the card in api_checkouts until CheckoutTTL, never the card's token.
func (b *cardBackend) StartTopUp(ctx context.Context, from string, tok cardpage.Secret, amount int64, origin string) (string, error) {
	cr, err := b.cardOf(ctx, tok)
	if err != nil {
		return "", err
	}
	if b.topUps == nil {
		return "", cardpage.ErrTopUpUnavailable
	}
	// The token is valid: the same check as for every page of the card.
	var st apitype.CardStatus
	if err := b.do(ctx, from, apiCall{method: "GET", path: "/v1/card", auth: cardAuth(tok)}, &st); err != nil {
		return "", err
	}
	if st.Status != "active" {
		return "", cardpage.ErrNotActive
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("api: checkout id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	now := b.s.now()
	if _, err := b.s.pool.Exec(ctx, `INSERT INTO api_checkouts (checkout_id, org_id, card_id, amount, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, id, cr.org, cr.uid, amount, now, now.Add(CheckoutTTL)); err != nil {
		return "", fmt.Errorf("api: record checkout: %w", err)
	}
	to, err := b.topUps.Start(ctx, cr.org, terminaltx.CardHex(cr.uid), amount, cardpage.ReturnURL(origin, id))
	if err != nil {
		return "", fmt.Errorf("api: start top-up: %w", err)
	}
	return to, nil
}

// TopUpCard finds the card of a checkout on the way back from the
// provider: the checkout must be the card's and not expired.
func (b *cardBackend) TopUpCard(ctx context.Context, checkout string, tok cardpage.Secret) error {
	cr, err := b.cardOf(ctx, tok)
	if errors.Is(err, cardpage.ErrUnknownCard) {
		return cardpage.ErrUnknownCheckout
	}
	if err != nil {
		return err
	}
	var ok bool
	if err := b.s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_checkouts
		WHERE checkout_id = $1 AND org_id = $2 AND card_id = $3 AND expires_at > $4)`, checkout, cr.org, cr.uid, b.s.now()).Scan(&ok); err != nil {
		return fmt.Errorf("api: checkout: %w", err)
	}
	if !ok {
		return cardpage.ErrUnknownCheckout
	}
	return nil
}

// voucherWire is VoucherRedeemRequest as the pages send it (a Secret does
// not encode).
type voucherWire struct {
	Code string `json:"code"`
}

func (b *cardBackend) RedeemVoucher(ctx context.Context, from string, tok, code cardpage.Secret) (int64, error) {
	var m apitype.MoneyResponse
	if err := b.do(ctx, from, apiCall{method: "POST", path: "/v1/card/vouchers", auth: cardAuth(tok), in: voucherWire{Code: code.Reveal()}}, &m); err != nil {
		return 0, err
	}
	return m.Amount, nil
}

var _ cardpage.Backend = (*cardBackend)(nil)
