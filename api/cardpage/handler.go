package cardpage

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/api/internal/httpstatus"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/card.css assets/card.js
var assetFS embed.FS

// Options configure the pages.
type Options struct {
	// Backend answers for the pages; required.
	Backend Backend
	// Logger receives the access log and failures; nil discards them.
	Logger *slog.Logger
	// TopUpAmounts are the amounts (cents) of the top-up buttons; nil means
	// 10, 20 and 50 euros.
	TopUpAmounts []int64
	// ProviderOrigins are origins (https://pay.example) the top-up may
	// redirect to; they are added to the policy's form-action.
	ProviderOrigins []string
}

var funcs = template.FuncMap{
	// withHistory is p showing h, for the entries of one of many cards.
	"withHistory": func(p *page, h History) *page {
		q := *p
		q.History, q.Card = &h, &h.Card
		return &q
	},
}

// Handler serves the pages. Create it with New.
type Handler struct {
	be      Backend
	log     *slog.Logger
	amounts []int64
	csp     string
	pages   map[string]*template.Template
	mux     *http.ServeMux
}

// Paths the Handler serves; see Serves.
var prefixes = []string{"/c/", "/topup/", "/account", "/privacy", "/assets/cardpage/"}

// Serves reports whether path is one of the pages' (the rest is the API's).
func Serves(path string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// New returns the pages' handler.
func New(o Options) (*Handler, error) {
	if o.Backend == nil {
		return nil, errors.New("cardpage: a Backend is required")
	}
	h := &Handler{be: o.Backend, log: o.Logger, amounts: o.TopUpAmounts, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.amounts == nil {
		h.amounts = []int64{1000, 2000, 5000}
	}
	formAction := "'self'"
	for _, origin := range o.ProviderOrigins {
		if strings.ContainsAny(origin, " ;,'\"") || !strings.HasPrefix(origin, "https://") {
			return nil, fmt.Errorf("cardpage: provider origin %q must be an https origin", origin)
		}
		formAction += " " + origin
	}
	h.csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action " + formAction +
		"; frame-ancestors 'none'; base-uri 'none'"
	for _, name := range []string{"card", "history", "refund", "refunded", "block", "claim", "login", "account", "erased", "privacy", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("cardpage: template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /c/{token}", h.cardPage)
	m.HandleFunc("POST /c/{token}/history", h.history)
	m.HandleFunc("GET /c/{token}/refund", h.refundForm)
	m.HandleFunc("POST /c/{token}/refund", h.refund)
	m.HandleFunc("GET /c/{token}/block", h.blockForm)
	m.HandleFunc("POST /c/{token}/block", h.block)
	m.HandleFunc("GET /c/{token}/claim", h.claimForm)
	m.HandleFunc("POST /c/{token}/claim", h.claim)
	m.HandleFunc("GET /c/{token}/login", h.loginForm)
	m.HandleFunc("POST /c/{token}/login", h.login)
	m.HandleFunc("POST /c/{token}/topup", h.topUp)
	m.HandleFunc("POST /c/{token}/voucher", h.voucher)
	m.HandleFunc("GET /topup/{checkout}", h.topUpReturn)
	m.HandleFunc("GET /account", h.account)
	m.HandleFunc("POST /account/cards/{card}/refund", h.profileRefund)
	m.HandleFunc("POST /account/cards/{card}/block", h.profileBlock)
	m.HandleFunc("POST /account/cards/{card}/autotopup", h.setAutoTopUp)
	m.HandleFunc("POST /account/cards/{card}/autotopup/stop", h.stopAutoTopUp)
	m.HandleFunc("POST /account/export", h.export)
	m.HandleFunc("POST /account/erase", h.erase)
	m.HandleFunc("POST /account/logout", h.logout)
	m.HandleFunc("GET /privacy", h.privacy)
	m.HandleFunc("GET /assets/cardpage/{file}", h.asset)
	m.HandleFunc("/", h.notFound)
	h.mux = m
	return h, nil
}

// maxForm bounds a form post.
const maxForm = 16 << 10

// ServeHTTP serves one page with the security headers, an access log line
// that names the route (never the path, which holds the card's token) and
// panic recovery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &httpstatus.Writer{ResponseWriter: w}
	hd := sw.Header()
	id := httpstatus.PageHeaders(hd, h.csp)
	hd.Set("Strict-Transport-Security", "max-age=31536000")
	hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	defer func() {
		status := sw.Status
		if status == 0 {
			status = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "cardpage access", slog.String("request_id", id),
			slog.String("method", r.Method), slog.String("route", route), slog.Int("status", status),
			slog.Duration("duration", time.Since(start)))
	}()
	defer httpstatus.RecoverPage(h.log, "cardpage: panic", id, sw)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(sw, r.Body, maxForm)
	}
	r = withCSRFSlot(r)
	h.mux.ServeHTTP(sw, r)
}

// page is what a template renders.
type page struct {
	Lang  Lang
	Title string
	CSRF  string
	// Self is this page's GET address, for the language switch.
	Self string
	// Base is the card's page (/c/TOKEN), when the page is about a card.
	Base    string
	Msg     string
	IsError bool
	Card    *Card
	History *History
	Profile *Profile
	// LoggedIn: a profile's login cookie is present.
	LoggedIn bool
	Amounts  []int64
	// The auto top-up form's choices (cents), on the account page.
	AutoAmounts, AutoThresholds, AutoLimits []int64
	Form                                    map[string]string
	// Errs are messages by form field, for aria-describedby.
	Errs map[string]string
}

func (p *page) T(key string) string { return p.Lang.T(key) }

func (p *page) Tf(key string, args ...any) string { return fmt.Sprintf(p.Lang.T(key), args...) }

func (p *page) Money(cents int64) string { return p.Lang.Money(cents) }

func (p *page) Time(t time.Time) string { return p.Lang.Time(t) }

func (p *page) Langs() []Lang { return Langs }

func (p *page) IBAN(s string) string { return groupIBAN(s) }

// State translates a status word if the catalogue knows it.
func (p *page) State(prefix, s string) string {
	if m, ok := p.Lang.catalog()[prefix+s]; ok {
		return m
	}
	return s
}

// newPage starts a page in the request's language, with its CSRF token;
// an explicit language switch is remembered in a cookie.
func (h *Handler) newPage(w http.ResponseWriter, r *http.Request, title, self string) *page {
	l, explicit := pickLang(r)
	if explicit {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/", Secure: true, HttpOnly: true,
			SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	}
	return &page{Lang: l, Title: title, CSRF: csrfToken(w, r), Self: self, Form: map[string]string{}, Errs: map[string]string{}}
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Language", string(p.Lang))
	var b strings.Builder
	if err := h.pages[name].Execute(&b, p); err != nil {
		h.log.Error("cardpage: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.String())
}

// message renders a page that only says something.
func (h *Handler) message(w http.ResponseWriter, r *http.Request, status int, key, base string) {
	p := h.newPage(w, r, "site", r.URL.Path)
	if r.Method != http.MethodGet {
		p.Self = base
		if base == "" {
			p.Self = "/privacy"
		}
	}
	p.Base, p.Msg, p.IsError = base, p.T(key), status >= 400
	h.render(w, status, "message", p)
}

// openCardPage opens a page of one card's own flows (/c/{token}SUFFIX): it
// answers 404 for a malformed token and, for a form post, checks the form
// and its CSRF token. ok is false when it has answered already.
func (h *Handler) openCardPage(w http.ResponseWriter, r *http.Request, title, suffix string, form bool) (tok Secret, p *page, ok bool) {
	tok, base, ok := cardToken(r)
	if !ok {
		h.notFound(w, r)
		return Secret{}, nil, false
	}
	if form && !h.parseForm(w, r, base) {
		return Secret{}, nil, false
	}
	p = h.newPage(w, r, title, base+suffix)
	p.Base = base
	return tok, p, true
}

// openProfile starts a request of a logged-in profile: for a form post it
// checks the form and its CSRF token; then it needs the session cookie, or
// answers 401. ok is false when it has answered already.
func (h *Handler) openProfile(w http.ResponseWriter, r *http.Request, form bool) (Secret, bool) {
	if form && !h.parseForm(w, r, "") {
		return Secret{}, false
	}
	s, ok := session(r)
	if !ok {
		h.message(w, r, http.StatusUnauthorized, "err_session", "")
		return Secret{}, false
	}
	return s, true
}

// cardToken reads the card's token from the path: 22 characters of
// base64url (128 bits).
func cardToken(r *http.Request) (Secret, string, bool) {
	t := r.PathValue("token")
	if len(t) != 22 {
		return Secret{}, "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(t); err != nil {
		return Secret{}, "", false
	}
	return NewSecret(t), "/c/" + t, true
}

// failure maps a Backend error to a status and a message; unexpected
// errors are logged (the Backend never puts a secret in an error).
func (h *Handler) failure(r *http.Request, err error) (int, string) {
	for _, e := range []struct {
		err    error
		status int
		key    string
	}{
		{ErrUnknownCard, http.StatusNotFound, "err_unknown_card"},
		{ErrWrongPIN, http.StatusUnauthorized, "err_wrong_pin"},
		{ErrPINFormat, http.StatusBadRequest, "err_pin_format"},
		{ErrLocked, http.StatusTooManyRequests, "err_locked"},
		{ErrBusy, http.StatusTooManyRequests, "err_busy"},
		{ErrClaimed, http.StatusForbidden, "err_claimed"},
		{ErrNotActive, http.StatusConflict, "err_not_active"},
		{ErrNothingToRefund, http.StatusConflict, "err_nothing"},
		{ErrRefundExists, http.StatusConflict, "err_refund_exists"},
		{ErrClaimNotAdded, http.StatusUnauthorized, "err_claim_not_added"},
		{ErrClaimedByOther, http.StatusConflict, "err_claimed_other"},
		{ErrInvalid, http.StatusBadRequest, "err_invalid"},
		{ErrLoginFailed, http.StatusUnauthorized, "err_login"},
		{ErrSessionEnded, http.StatusUnauthorized, "err_session"},
		{ErrTopUpUnavailable, http.StatusServiceUnavailable, "topup_unavailable"},
		{ErrVoucher, http.StatusConflict, "err_voucher"},
	} {
		if errors.Is(err, e.err) {
			return e.status, e.key
		}
	}
	if errors.Is(err, context.Canceled) {
		return 499, "err_generic"
	}
	h.log.Error("cardpage: backend failed", "route", r.Pattern, "err", err)
	return http.StatusInternalServerError, "err_generic"
}

// parseForm reads a form post and checks its CSRF token; on failure it
// has answered.
func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request, base string) bool {
	if err := r.ParseForm(); err != nil {
		h.message(w, r, http.StatusBadRequest, "err_generic", base)
		return false
	}
	if !checkCSRF(r) {
		h.message(w, r, http.StatusForbidden, "err_csrf", base)
		return false
	}
	return true
}

func (h *Handler) from(r *http.Request) string { return r.RemoteAddr }

// cardPage shows the balance, pending loads, top-up and the PIN form.
func (h *Handler) cardPage(w http.ResponseWriter, r *http.Request) {
	tok, base, ok := cardToken(r)
	if !ok {
		h.notFound(w, r)
		return
	}
	p := h.newPage(w, r, "card_title", base)
	switch r.URL.Query().Get("topup") {
	case "done":
		p.Msg = p.T("topup_done")
	case "cancelled":
		p.Msg = p.T("topup_cancelled")
	}
	h.showCard(w, r, p, tok, base, http.StatusOK)
}

// showCard renders the card page with p's message and status.
func (h *Handler) showCard(w http.ResponseWriter, r *http.Request, p *page, tok Secret, base string, status int) {
	c, err := h.be.Card(r.Context(), h.from(r), tok)
	if err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "")
		return
	}
	p.Title, p.Base, p.Card, p.Amounts, p.Self = "card_title", base, &c, h.amounts, base
	h.render(w, status, "card", p)
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	tok, base, ok := cardToken(r)
	if !ok {
		h.notFound(w, r)
		return
	}
	if !h.parseForm(w, r, base) {
		return
	}
	p := h.newPage(w, r, "history_title", base)
	hist, err := h.be.History(r.Context(), h.from(r), tok, NewSecret(r.PostForm.Get("pin")))
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		if st == http.StatusUnauthorized || st == http.StatusBadRequest || st == http.StatusTooManyRequests {
			p.Errs["pin"] = p.Msg
		}
		h.showCard(w, r, p, tok, base, st)
		return
	}
	p.Base, p.History, p.Card = base, &hist, &hist.Card
	h.render(w, http.StatusOK, "history", p)
}

func (h *Handler) refundForm(w http.ResponseWriter, r *http.Request) {
	_, p, ok := h.openCardPage(w, r, "refund_title", "/refund", false)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "refund", p)
}

// payout reads and checks the refund form's name and IBAN, noting
// errors on p.
func payout(r *http.Request, p *page) (Payout, bool) {
	name := strings.TrimSpace(r.PostForm.Get("name"))
	iban, valid := NormalizeIBAN(r.PostForm.Get("iban"))
	p.Form["name"], p.Form["iban"] = name, r.PostForm.Get("iban")
	if name == "" || len(name) > 200 {
		p.Errs["name"] = p.T("name_required")
	}
	if !valid {
		p.Errs["iban"] = p.T("iban_invalid")
	}
	return Payout{Name: name, IBAN: iban}, len(p.Errs) == 0
}

func (h *Handler) refund(w http.ResponseWriter, r *http.Request) {
	tok, p, ok := h.openCardPage(w, r, "refund_title", "/refund", true)
	if !ok {
		return
	}
	po, valid := payout(r, p)
	if !valid {
		p.Msg, p.IsError = p.T("err_form"), true
		h.render(w, http.StatusBadRequest, "refund", p)
		return
	}
	rc, err := h.be.Refund(r.Context(), h.from(r), tok, NewSecret(r.PostForm.Get("pin")), po)
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		if st == http.StatusUnauthorized || st == http.StatusTooManyRequests || errors.Is(err, ErrPINFormat) {
			p.Errs["pin"] = p.Msg
		}
		h.render(w, st, "refund", p)
		return
	}
	p.Msg = p.Tf("refund_done", p.Money(rc.Amount))
	h.render(w, http.StatusCreated, "refunded", p)
}

func (h *Handler) blockForm(w http.ResponseWriter, r *http.Request) {
	_, p, ok := h.openCardPage(w, r, "block_title", "/block", false)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "block", p)
}

// blockReason is the reason a block form names: lost or stolen.
func blockReason(r *http.Request) (string, bool) {
	switch v := r.PostForm.Get("reason"); v {
	case "lost", "stolen":
		return v + " (cardholder)", true
	}
	return "", false
}

func (h *Handler) block(w http.ResponseWriter, r *http.Request) {
	tok, p, ok := h.openCardPage(w, r, "block_title", "/block", true)
	if !ok {
		return
	}
	reason, valid := blockReason(r)
	if !valid {
		p.Errs["reason"] = p.T("block_reason_required")
		p.Msg, p.IsError = p.T("err_form"), true
		h.render(w, http.StatusBadRequest, "block", p)
		return
	}
	if err := h.be.Block(r.Context(), h.from(r), tok, NewSecret(r.PostForm.Get("pin")), reason); err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		if st == http.StatusUnauthorized || st == http.StatusTooManyRequests || errors.Is(err, ErrPINFormat) {
			p.Errs["pin"] = p.Msg
		}
		h.render(w, st, "block", p)
		return
	}
	h.message(w, r, http.StatusOK, "block_done", p.Base)
}

func (h *Handler) profileBlock(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	reason, valid := blockReason(r)
	if !valid {
		h.message(w, r, http.StatusBadRequest, "block_reason_required", "")
		return
	}
	if err := h.be.ProfileBlock(r.Context(), h.from(r), s, r.PathValue("card"), reason); err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "")
		return
	}
	h.message(w, r, http.StatusOK, "block_done", "")
}

func (h *Handler) claimForm(w http.ResponseWriter, r *http.Request) {
	_, p, ok := h.openCardPage(w, r, "claim_title", "/claim", false)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "claim", p)
}

// sessionCookie holds a profile's login (the API's bearer token).
const sessionCookie = "__Host-lc_session"

func setSession(w http.ResponseWriter, s Secret) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.Reveal(), Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
}

func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func (h *Handler) claim(w http.ResponseWriter, r *http.Request) {
	tok, p, ok := h.openCardPage(w, r, "claim_title", "/claim", true)
	if !ok {
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	p.Form["email"] = email
	if r.PostForm.Get("consent") != "yes" {
		p.Errs["consent"] = p.T("consent_required")
		p.Msg, p.IsError = p.Errs["consent"], true
		h.render(w, http.StatusBadRequest, "claim", p)
		return
	}
	s, err := h.be.Claim(r.Context(), h.from(r), tok, NewSecret(r.PostForm.Get("pin")),
		Credentials{Email: email, Password: NewSecret(r.PostForm.Get("password")), Consent: true})
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		if st == http.StatusUnauthorized || st == http.StatusTooManyRequests || errors.Is(err, ErrPINFormat) {
			p.Errs["pin"] = p.Msg
		}
		h.render(w, st, "claim", p)
		return
	}
	setSession(w, s)
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	_, p, ok := h.openCardPage(w, r, "login_title", "/login", false)
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "login", p)
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	tok, p, ok := h.openCardPage(w, r, "login_title", "/login", true)
	if !ok {
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	p.Form["email"] = email
	s, err := h.be.Login(r.Context(), h.from(r), tok, Credentials{Email: email, Password: NewSecret(r.PostForm.Get("password"))})
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		h.render(w, st, "login", p)
		return
	}
	setSession(w, s)
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// topUp starts an online top-up of one of the offered amounts.
func (h *Handler) topUp(w http.ResponseWriter, r *http.Request) {
	tok, base, ok := cardToken(r)
	if !ok {
		h.notFound(w, r)
		return
	}
	if !h.parseForm(w, r, base) {
		return
	}
	amount, err := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
	p := h.newPage(w, r, "card_title", base)
	if err != nil || !slices.Contains(h.amounts, amount) {
		p.Msg, p.IsError = p.T("err_generic"), true
		h.showCard(w, r, p, tok, base, http.StatusBadRequest)
		return
	}
	scheme := "https"
	if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") == "http" {
		scheme = "http"
	}
	to, err := h.be.StartTopUp(r.Context(), h.from(r), tok, amount, scheme+"://"+r.Host)
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		h.showCard(w, r, p, tok, base, st)
		return
	}
	// The provider sends the cardholder back to /topup/{checkout}, which
	// names no card: this browser finds its card page again by a cookie
	// that only that path receives (Lax: it comes with the provider's
	// redirect, a top-level GET).
	http.SetCookie(w, &http.Cookie{Name: topUpCookie, Value: tok.Reveal(), Path: "/topup/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(TopUpReturnTTL.Seconds())})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// topUpCookie keeps the card's token in the browser that started a
// top-up, for the way back from the provider.
const topUpCookie = "lc_topup"

// TopUpReturnTTL is how long the way back from the provider finds the
// card page.
const TopUpReturnTTL = time.Hour

// topUpReturn is where the provider sends the cardholder back: to the
// card page, when this browser started the checkout of the card and it has
// not expired; otherwise a page that names no card.
func (h *Handler) topUpReturn(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("checkout")
	msg := "topup_done"
	if r.URL.Query().Get("topup") == "cancelled" {
		msg = "topup_cancelled"
	}
	if c, err := r.Cookie(topUpCookie); err == nil && len(id) <= 64 {
		r2 := r.Clone(r.Context())
		r2.SetPathValue("token", c.Value)
		if tok, base, ok := cardToken(r2); ok {
			err := h.be.TopUpCard(r.Context(), id, tok)
			if err == nil {
				http.SetCookie(w, &http.Cookie{Name: topUpCookie, Value: "", Path: "/topup/", Secure: true, HttpOnly: true,
					SameSite: http.SameSiteLaxMode, MaxAge: -1})
				http.Redirect(w, r, base+"?topup="+strings.TrimPrefix(msg, "topup_"), http.StatusSeeOther)
				return
			}
			if !errors.Is(err, ErrUnknownCheckout) {
				h.log.Error("cardpage: top-up return", "err", err)
			}
		}
	}
	h.message(w, r, http.StatusOK, msg+"_elsewhere", "")
}

func session(r *http.Request) (Secret, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return Secret{}, false
	}
	return NewSecret(c.Value), true
}

// account shows the logged-in profile: its cards, export and erasure.
func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "account_title", "/account")
	s, ok := h.openProfile(w, r, false)
	if !ok {
		return
	}
	prof, err := h.be.Profile(r.Context(), h.from(r), s)
	if err != nil {
		st, key := h.failure(r, err)
		if errors.Is(err, ErrSessionEnded) {
			clearSession(w)
		}
		h.message(w, r, st, key, "")
		return
	}
	p.Profile = &prof
	switch r.URL.Query().Get("autotopup") {
	case "saved":
		p.Msg = p.T("auto_saved")
	case "cancelled":
		p.Msg = p.T("auto_cancelled")
	}
	p.AutoAmounts, p.AutoThresholds, p.AutoLimits = autoAmounts, autoThresholds, autoLimits
	h.render(w, http.StatusOK, "account", p)
}

// The choices of the auto top-up form, in cents.
var (
	autoAmounts    = []int64{1000, 2000, 5000}
	autoThresholds = []int64{500, 1000, 2000, 5000}
	autoLimits     = []int64{2000, 5000, 10000}
)

// setAutoTopUp sets a card's auto top-up from the account page's form and
// sends the cardholder to the provider's page to save a payment method.
func (h *Handler) setAutoTopUp(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	num := func(name string, allowed []int64) (int64, bool) {
		n, err := strconv.ParseInt(r.PostForm.Get(name), 10, 64)
		return n, err == nil && slices.Contains(allowed, n)
	}
	amount, ok1 := num("amount", autoAmounts)
	threshold, ok2 := num("threshold", autoThresholds)
	limit, ok3 := num("limit", autoLimits)
	if !ok1 || !ok2 || !ok3 || limit < amount {
		h.message(w, r, http.StatusBadRequest, "auto_invalid", "/account")
		return
	}
	scheme := "https"
	if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") == "http" {
		scheme = "http"
	}
	to, err := h.be.SetAutoTopUp(r.Context(), h.from(r), s, r.PathValue("card"),
		AutoTopUp{Amount: amount, Threshold: threshold, DailyLimit: limit}, scheme+"://"+r.Host)
	if err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "/account")
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// stopAutoTopUp turns a card's auto top-up off.
func (h *Handler) stopAutoTopUp(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	if err := h.be.StopAutoTopUp(r.Context(), h.from(r), s, r.PathValue("card")); err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "/account")
		return
	}
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

func (h *Handler) profileRefund(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	p := h.newPage(w, r, "refund_title", "/account")
	po, valid := payout(r, p)
	if !valid {
		h.message(w, r, http.StatusBadRequest, "iban_invalid", "")
		return
	}
	rc, err := h.be.ProfileRefund(r.Context(), h.from(r), s, r.PathValue("card"), po)
	if err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "")
		return
	}
	p.Msg = p.Tf("refund_done", p.Money(rc.Amount))
	h.render(w, http.StatusCreated, "refunded", p)
}

// export downloads everything kept about the profile.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	b, err := h.be.Export(r.Context(), h.from(r), s)
	if err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "")
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Disposition", `attachment; filename="loopcard-data.json"`)
	hd.Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

func (h *Handler) erase(w http.ResponseWriter, r *http.Request) {
	s, ok := h.openProfile(w, r, true)
	if !ok {
		return
	}
	if r.PostForm.Get("confirm") != "yes" {
		p := h.newPage(w, r, "account_title", "/account")
		prof, err := h.be.Profile(r.Context(), h.from(r), s)
		if err != nil {
			st, key := h.failure(r, err)
			h.message(w, r, st, key, "")
			return
		}
		p.Profile = &prof
		p.Errs["confirm"] = p.T("erase_required")
		p.Msg, p.IsError = p.Errs["confirm"], true
		h.render(w, http.StatusBadRequest, "account", p)
		return
	}
	if err := h.be.Erase(r.Context(), h.from(r), s); err != nil {
		st, key := h.failure(r, err)
		h.message(w, r, st, key, "")
		return
	}
	clearSession(w)
	p := h.newPage(w, r, "erase_title", "/privacy")
	p.Msg = p.T("erased")
	h.render(w, http.StatusOK, "erased", p)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if !h.parseForm(w, r, "") {
		return
	}
	if s, ok := session(r); ok {
		if err := h.be.Logout(r.Context(), h.from(r), s); err != nil && !errors.Is(err, ErrSessionEnded) {
			st, key := h.failure(r, err)
			h.message(w, r, st, key, "")
			return
		}
	}
	clearSession(w)
	http.Redirect(w, r, "/privacy", http.StatusSeeOther)
}

func (h *Handler) privacy(w http.ResponseWriter, r *http.Request) {
	p := h.newPage(w, r, "privacy_title", "/privacy")
	_, p.LoggedIn = session(r)
	h.render(w, http.StatusOK, "privacy", p)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.message(w, r, http.StatusNotFound, "err_not_found", "")
}

// asset serves the stylesheet and the script.
func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	var ctype string
	switch name {
	case "card.css":
		ctype = "text/css; charset=utf-8"
	case "card.js":
		ctype = "text/javascript; charset=utf-8"
	default:
		h.notFound(w, r)
		return
	}
	b, err := assetFS.ReadFile("assets/" + name)
	if err != nil {
		h.notFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}

// maxVoucherCode bounds what the voucher form accepts (a code is 19
// characters as printed).
const maxVoucherCode = 40

// voucher redeems a voucher code for the card: its value is a pending
// load, added at the next terminal.
func (h *Handler) voucher(w http.ResponseWriter, r *http.Request) {
	tok, base, ok := cardToken(r)
	if !ok {
		h.notFound(w, r)
		return
	}
	if !h.parseForm(w, r, base) {
		return
	}
	p := h.newPage(w, r, "card_title", base)
	code := strings.TrimSpace(r.PostForm.Get("code"))
	if code == "" || len(code) > maxVoucherCode {
		p.Msg, p.IsError = p.T("err_voucher"), true
		h.showCard(w, r, p, tok, base, http.StatusBadRequest)
		return
	}
	amount, err := h.be.RedeemVoucher(r.Context(), h.from(r), tok, NewSecret(code))
	if err != nil {
		st, key := h.failure(r, err)
		p.Msg, p.IsError = p.T(key), true
		h.showCard(w, r, p, tok, base, st)
		return
	}
	p.Msg = p.Tf("voucher_done", p.Money(amount))
	h.showCard(w, r, p, tok, base, http.StatusCreated)
}
