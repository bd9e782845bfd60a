package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loopcard/loopcard/api/internal/httpstatus"
	"github.com/loopcard/loopcard/api/internal/metrics"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// call is one request on its way through the chain.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	id    string
	route *route
	body  []byte
	who   principal
	ip    string
	// target names what the request acted on, for the audit record.
	target string
	// detail adds to the audit record (never a secret).
	detail string
	status int
	// idem is the request's Idempotency-Key, on routes that need one.
	idem txid.ID
	// cred is the staff token or terminal signature admit saw.
	cred credential
}

type ctxKey struct{}

// reqState is shared by the outer handler and the route's chain.
type reqState struct {
	c *call
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// outer gives every request an id, writes the access log, recovers
// panics and records metrics, for matched routes and unmatched paths alike.
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		done := s.metrics.Start()
		defer done()
		c := &call{id: newRequestID(), ip: remoteIP(r)}
		sw := &httpstatus.Writer{ResponseWriter: w}
		sw.Header().Set("X-Request-Id", c.id)
		sw.Header().Set("Cache-Control", "no-store")
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		st := &reqState{c: c}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api: panic", "request_id", c.id, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.Status == 0 {
					s.writeError(sw, c, apiError(http.StatusInternalServerError, "internal error", nil))
				}
			}
			routeName := metrics.Unmatched
			if c.route != nil && c.route.method != "" {
				routeName = c.route.pattern()
			}
			status := sw.Status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			s.metrics.Observe(routeName, r.Method, status, d)
			attrs := []slog.Attr{slog.String("request_id", c.id), slog.String("method", metrics.Method(r.Method)),
				slog.String("route", routeName), slog.Int("status", status), slog.Duration("duration", d),
				slog.String("remote", c.ip), slog.String("actor", c.who.actor())}
			if c.r != nil && c.route != nil {
				attrs = append(attrs, pathValues(c.r, c.route.path)...)
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "access", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// loggablePathValue says, for each path wildcard, which values are well
// formed: identifiers (a store, a batch number, a card's hex id, ...).
// checkPath refuses a request with any other value (400) before a handler
// or the database sees it, and only well-formed values are shown in the
// access log. The raw path never reaches the log: a client may put
// anything in it (a card's QR token in a mistyped address, a bearer token
// where a terminal id belongs); an unmatched path is logged as the route
// "unmatched", a malformed wildcard as "(malformed)". Every wildcard of
// the role matrix has an entry (TestPathWildcardsChecked).
var loggablePathValue = map[string]func(string) bool{
	"store":    terminaltx.ValidID,
	"terminal": terminaltx.ValidID,
	"event":    terminaltx.ValidID,
	"merchant": terminaltx.ValidID,
	"batch": func(v string) bool {
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	},
	"card":       func(v string) bool { _, ok := parseCardID(v); return ok },
	"load":       func(v string) bool { _, ok := parseUUID(v); return ok },
	"alert":      func(v string) bool { _, ok := parseUUID(v); return ok },
	"correction": func(v string) bool { _, ok := parseUUID(v); return ok },
	"payout":     func(v string) bool { _, ok := parseUUID(v); return ok },
	"token":      validTokenID,
}

// pathValues returns the wildcards of the matched route pattern as the
// access log may show them.
func pathValues(r *http.Request, pattern string) []slog.Attr {
	var out []slog.Attr
	for seg := range strings.SplitSeq(pattern, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		valid := loggablePathValue[name]
		if valid == nil {
			continue
		}
		v := r.PathValue(name)
		if !valid(v) {
			v = "(malformed)"
		}
		out = append(out, slog.String(name, v))
	}
	return out
}

// checkPath refuses a request whose path wildcards are not well formed
// (loggablePathValue): a NUL, bytes that are not UTF-8 or a 2 KB store id
// are refused here, not by PostgreSQL.
func checkPath(c *call) error {
	for seg := range strings.SplitSeq(c.route.path, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		valid := loggablePathValue[name]
		if valid == nil || !valid(c.r.PathValue(name)) {
			return badRequest("malformed "+name+" in the path", nil)
		}
	}
	return nil
}

// chain is the per-route part of the chain: admission (the limit per
// address and the anonymous budget, refused cheaply), timeout, body, the
// limit per client, authentication, authorization, the handler, and the
// audit record.
func (s *Server) chain(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, _ := r.Context().Value(ctxKey{}).(*reqState)
		if st == nil {
			panic("api: chain without outer handler")
		}
		c := st.c
		c.w, c.r, c.route = w, r, rt
		why, cred := s.admission(r, c.ip, rt.method == "GET" && rt.path == "/healthz", true)
		c.cred = cred
		if why != "" {
			s.refuse(w, c, why)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.limits.RequestTimeout)
		defer cancel()
		c.ctx = ctx
		err := s.pipeline(c)
		switch {
		case err != nil && c.status != 0:
			// The answer has begun: too late for an error body.
			s.log.Warn("api: error after the response began", "request_id", c.id, "err", err)
			err = nil
		case err != nil:
			s.writeError(w, c, err)
		default:
			s.wrote(rt)
		}
		s.audit(c, err)
	})
}

func (s *Server) pipeline(c *call) error {
	// admit has let the request in (chain).
	// Nothing of the body is read before the sender is known and may call
	// the route: a stranger's upload costs no memory.
	// The most any authenticated caller may send is checked first.
	if c.r.ContentLength > s.bodyLimit(c.route, RoleTerminal) {
		return errTooLarge
	}
	who, err := s.authenticate(c)
	if err != nil {
		if c.cred.ok() && publicError(err).Status == http.StatusUnauthorized {
			s.failedCredential(c)
		}
		return err
	}
	if c.cred.ok() {
		s.creds.succeeded(c.cred)
	}
	c.who = who
	if who.role != RoleAnonymous && !s.clLimit.allow("client:"+who.actor()) {
		s.metrics.RequestRefused(refusedPerClient)
		return errRateLimited
	}
	if err := checkPath(c); err != nil {
		return err
	}
	if err := s.authorize(c); err != nil {
		return err
	}
	if err := s.readBody(c); err != nil {
		return err
	}
	if err := checkDigest(c); err != nil {
		return err
	}
	if c.route.money {
		if c.idem, err = idempotencyKey(c.r); err != nil {
			return err
		}
	}
	return s.rideFailover(c)
}

// bodyLimit is the largest body route takes from role: a few KiB from
// anonymous callers, Limits.MaxBatchBody on the big-body routes, else
// Limits.MaxBody.
func (s *Server) bodyLimit(rt *route, role Role) int64 {
	max := s.limits.MaxBody
	if rt.bigBody {
		max = s.limits.MaxBatchBody
	}
	if role == RoleAnonymous {
		max = min(max, s.limits.MaxAnonymousBody)
	}
	return max
}

// readBody reads the whole body within the limit for the route and the
// caller: request signatures cover it, and nothing is changed before it
// was all read.
func (s *Server) readBody(c *call) error {
	max := s.bodyLimit(c.route, c.who.role)
	if c.r.ContentLength > max {
		return errTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge
		}
		return badRequest("cannot read body", err)
	}
	if len(b) > 0 {
		mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			return errMediaType
		}
		// JSON is UTF-8 (RFC 8259); encoding/json would quietly turn a
		// bad byte into U+FFFD.
		if !utf8.Valid(b) {
			return badRequest("body must be valid UTF-8", nil)
		}
	}
	c.body = b
	return nil
}

// decode reads the JSON body into v: unknown fields, trailing data and a
// missing body are errors, and so is any string in it that input.Text
// refuses (a NUL, or longer than input.MaxText): a handler gets text
// PostgreSQL will take.
func (c *call) decode(v any) error {
	if len(c.body) == 0 {
		return badRequest("a JSON body is required", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("malformed JSON body", err)
	}
	if dec.More() {
		return badRequest("malformed JSON body", errors.New("trailing data"))
	}
	if err := input.Strings(v, input.MaxText); err != nil {
		return badRequest(err.Error(), err)
	}
	return nil
}

// reply writes v as JSON with status.
func (c *call) reply(status int, v any) error {
	c.status = status
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	return json.NewEncoder(c.w).Encode(v)
}

type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id"`
}

func (s *Server) writeError(w http.ResponseWriter, c *call, err error) {
	pe := publicError(err)
	c.status = pe.Status
	if pe.Status >= 500 {
		s.log.Error("api: request failed", "request_id", c.id, "err", err)
	} else if pe.Err != nil {
		s.log.Debug("api: request refused", "request_id", c.id, "status", pe.Status, "err", err)
	}
	if pe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="loopcard"`)
	}
	if pe.Status == http.StatusTooManyRequests || pe.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(pe.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: pe.Public, RequestID: c.id})
}

// audit writes the audit record of a privileged request or of any refused
// or failed one.
func (s *Server) audit(c *call, err error) {
	status := c.status
	if err != nil {
		status = publicError(err).Status
	}
	if err == nil && !c.route.privileged {
		return
	}
	outcome := "ok"
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusTooManyRequests:
		outcome = "denied"
	case status >= 400:
		outcome = "failed"
	}
	detail := c.detail
	if err != nil && detail == "" {
		detail = publicError(err).Public
	}
	action := c.route.pattern()
	// The audit record is written even when the request's own context has
	// ended (timeout, client gone).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), 15*time.Second)
	defer cancel()
	at := s.now()
	var aerr error
	// Through a failover too (ledger.Unavailable): the record is written
	// again until the new primary takes it.
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, aerr = s.pool.Exec(ctx, `INSERT INTO api_audit (org_id, at, request_id, actor, action, target, remote_addr, outcome, status, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.who.org, at, c.id, truncate(c.who.actor(), 300), truncate(action, 300), truncate(c.target, 300),
			truncate(c.ip, 100), outcome, status, truncate(detail, 500))
		if aerr == nil || !ledger.Unavailable(aerr) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	if aerr != nil {
		s.metrics.Inc("audit_write_failed")
		s.log.Error("api: audit record not written", "request_id", c.id, "action", action, "err", aerr)
	}
}

// truncate makes s storable in an audit record or alert, at most n bytes:
// cut on a character boundary, bad bytes and NULs escaped (input.Clean).
// Whatever a caller sent, the record is written.
func truncate(s string, n int) string { return input.Clean(s, n) }

// alertQuiet is how long a repeated alert stays quiet.
const alertQuiet = 10 * time.Minute

// raiseAlert records a suspicious pattern.
// The same alert (kind, actor, address) is recorded once per alertQuiet;
// repeats in between are only counted, so a revoked terminal retrying all
// night makes one alert, not thousands.
func (s *Server) raiseAlert(c *call, kind, detail string) {
	s.metrics.Inc("alert_" + kind)
	key := kind + "\x00" + c.who.actor() + "\x00" + c.ip
	now := s.now()
	s.alertMu.Lock()
	last, seen := s.alerted[key]
	if !seen || now.Sub(last) >= alertQuiet || now.Before(last) {
		if len(s.alerted) > 10000 {
			clear(s.alerted)
		}
		s.alerted[key] = now
		seen = false
	}
	s.alertMu.Unlock()
	if seen {
		return
	}
	s.log.Warn("api: alert", "kind", kind, "actor", c.who.actor(), "remote", c.ip, "request_id", c.id, "detail", detail)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.r.Context()), 5*time.Second)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `INSERT INTO api_alerts (org_id, kind, actor, remote_addr, detail, raised_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.who.org, kind, truncate(c.who.actor(), 300), truncate(c.ip, 100), truncate(detail, 500), s.now()); err != nil {
		s.log.Error("api: alert not written", "request_id", c.id, "err", err)
	}
}
