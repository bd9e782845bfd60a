package cardpage_test

import (
	"bytes"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/cardpage"
)

// syncBuffer collects log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// client is a minimal browser over the handler: it keeps cookies and puts
// the CSRF token in forms.
type client struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
	header  http.Header
}

func newClient(t *testing.T, h http.Handler) *client {
	return &client{t: t, h: h, cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

type page struct {
	status int
	body   string
	header http.Header
}

func (c *client) do(req *http.Request) page {
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	return page{status: res.StatusCode, body: rec.Body.String(), header: res.Header}
}

func (c *client) get(path string) page {
	return c.do(httptest.NewRequest("GET", "https://cards.example"+path, nil))
}

// post sends a form with the CSRF token of the cookie (fetching a page
// first if there is none).
func (c *client) post(path string, form url.Values) page {
	if c.cookies["__Host-lc_csrf"] == nil {
		c.get("/privacy")
	}
	form.Set("csrf", c.cookies["__Host-lc_csrf"].Value)
	return c.postRaw(path, form)
}

func (c *client) postRaw(path string, form url.Values) page {
	req := httptest.NewRequest("POST", "https://cards.example"+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

func newPages(t *testing.T, be cardpage.Backend) (*cardpage.Handler, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	h, err := cardpage.New(cardpage.Options{Backend: be, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ProviderOrigins: []string{"https://pay.example"}})
	require.NoError(t, err)
	return h, logs
}

const base = "/c/" + fakeToken

func TestIBAN(t *testing.T) {
	for _, tc := range []struct {
		in, norm string
		ok       bool
	}{
		{"NL91 ABNA 0417 1643 00", "NL91ABNA0417164300", true},
		{"nl91abna0417164300", "NL91ABNA0417164300", true},
		{"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", true},
		{"BE68 5390 0754 7034", "BE68539007547034", true},
		{"GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", true},
		{"NL92 ABNA 0417 1643 00", "NL92ABNA0417164300", false}, // check digits
		{"NL91 ABNA 0417 1643 0", "NL91ABNA041716430", false},   // length of NL
		{"XX91 ABNA 0417 1643 00", "XX91ABNA0417164300", false}, // no such country
		{"DE00 0000 0000 0000 0000 00", "DE00000000000000000000", false},
		{"NL91-ABNA-0417-1643-00", "NL91-ABNA-0417-1643-00", false},
		{"", "", false},
	} {
		norm, ok := cardpage.NormalizeIBAN(tc.in)
		require.Equal(t, tc.norm, norm, tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
	}
}

// pages lists a GET of every page, with the backend in the state it needs.
func everyPage(t *testing.T) map[string]page {
	t.Helper()
	f := newFake()
	h, _ := newPages(t, f)
	c := newClient(t, h)
	out := map[string]page{}
	for _, p := range []string{base, base + "/refund", base + "/claim", base + "/login", "/privacy", "/nope"} {
		out[p] = c.get(p)
	}
	out["history"] = c.post(base+"/history", url.Values{"pin": {fakePIN}})
	out["wrong pin"] = c.post(base+"/history", url.Values{"pin": {"000000"}})
	out["refund error"] = c.post(base+"/refund", url.Values{"pin": {fakePIN}, "name": {""}, "iban": {"NL00"}})
	out["claim"] = c.post(base+"/claim", url.Values{"pin": {fakePIN}, "email": {"ada@example.org"}, "password": {fakePassword}, "consent": {"yes"}})
	out["/account"] = c.get("/account")
	return out
}

func TestPagesHeadersAndCSRFFields(t *testing.T) {
	wantCSP := "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self' https://pay.example; frame-ancestors 'none'; base-uri 'none'"
	form := regexp.MustCompile(`<form [^>]*>`)
	csrf := regexp.MustCompile(`<form [^>]*><input type="hidden" name="csrf" value="[A-Za-z0-9_-]{43}">`)
	for name, p := range everyPage(t) {
		require.Equal(t, wantCSP, p.header.Get("Content-Security-Policy"), name)
		require.Equal(t, "nosniff", p.header.Get("X-Content-Type-Options"), name)
		require.Equal(t, "same-origin", p.header.Get("Referrer-Policy"), name)
		require.Equal(t, "DENY", p.header.Get("X-Frame-Options"), name)
		if p.status == http.StatusSeeOther {
			continue
		}
		require.Equal(t, "no-store", p.header.Get("Cache-Control"), name)
		require.Equal(t, "text/html; charset=utf-8", p.header.Get("Content-Type"), name)
		require.Equal(t, len(form.FindAllString(p.body, -1)), len(csrf.FindAllString(p.body, -1)), "every form has its CSRF field: %s", name)
		// No inline script or style: the policy would block them.
		require.NotRegexp(t, `<script>|<style|style="|onclick=|javascript:`, p.body, name)
	}
}

func TestPageWeight(t *testing.T) {
	css, err := os.ReadFile("assets/card.css")
	require.NoError(t, err)
	js, err := os.ReadFile("assets/card.js")
	require.NoError(t, err)
	for name, p := range everyPage(t) {
		total := len(p.body) + len(css) + len(js)
		require.Less(t, total, 100_000, "%s: HTML+CSS+JS is %d bytes", name, total)
		t.Logf("%-14s %6d bytes (HTML %d)", name, total, len(p.body))
	}
}

func TestCSRF(t *testing.T) {
	f := newFake()
	h, _ := newPages(t, f)
	pin := url.Values{"pin": {fakePIN}}
	for _, tc := range []struct {
		name   string
		setup  func(c *client, form url.Values)
		status int
	}{
		{"no cookie, no field", func(c *client, form url.Values) {}, http.StatusForbidden},
		{"cookie, no field", func(c *client, form url.Values) { c.get(base) }, http.StatusForbidden},
		{"field of another session", func(c *client, form url.Values) {
			other := newClient(t, h)
			other.get(base)
			c.get(base)
			form.Set("csrf", other.cookies["__Host-lc_csrf"].Value)
		}, http.StatusForbidden},
		{"cross-site", func(c *client, form url.Values) {
			c.get(base)
			form.Set("csrf", c.cookies["__Host-lc_csrf"].Value)
			c.header.Set("Sec-Fetch-Site", "cross-site")
		}, http.StatusForbidden},
		{"other origin", func(c *client, form url.Values) {
			c.get(base)
			form.Set("csrf", c.cookies["__Host-lc_csrf"].Value)
			c.header.Set("Origin", "https://evil.example")
		}, http.StatusForbidden},
		{"same origin", func(c *client, form url.Values) {
			c.get(base)
			form.Set("csrf", c.cookies["__Host-lc_csrf"].Value)
			c.header.Set("Origin", "https://cards.example")
			c.header.Set("Sec-Fetch-Site", "same-origin")
		}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, h)
			form := url.Values{}
			for k, v := range pin {
				form[k] = v
			}
			tc.setup(c, form)
			before := f.calls
			p := c.postRaw(base+"/history", form)
			require.Equal(t, tc.status, p.status, p.body)
			if tc.status == http.StatusForbidden {
				require.Contains(t, p.body, "This form has expired")
				require.Equal(t, before, f.calls, "a refused form reaches no backend")
			}
		})
	}
	// One response sets one token, also where a page falls back to another.
	for _, path := range []string{"/account", base, "/privacy"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "https://cards.example"+path, nil))
		var n int
		for _, ck := range rec.Result().Cookies() {
			if ck.Name == "__Host-lc_csrf" {
				n++
				if strings.Contains(rec.Body.String(), "<form") {
					require.Contains(t, rec.Body.String(), ck.Value, path)
				}
			}
		}
		require.Equal(t, 1, n, path)
	}

	// The cookie's attributes.
	c := newClient(t, h)
	c.get(base)
	ck := c.cookies["__Host-lc_csrf"]
	require.NotNil(t, ck)
	require.True(t, ck.Secure)
	require.True(t, ck.HttpOnly)
	require.Equal(t, "/", ck.Path)
	require.Equal(t, http.SameSiteStrictMode, ck.SameSite)
}

func TestLanguages(t *testing.T) {
	h, _ := newPages(t, newFake())
	for _, tc := range []struct {
		accept, want string
	}{
		{"", "Balance"},
		{"nl-NL,nl;q=0.9,en;q=0.8", "Saldo"},
		{"en-GB,en;q=0.9,nl;q=0.8", "Balance"},
		{"de-DE,de;q=0.9,nl;q=0.5", "Saldo"},
		{"fr", "Balance"},
		{"en;q=0.3, nl;q=0.7", "Saldo"},
	} {
		c := newClient(t, h)
		c.header.Set("Accept-Language", tc.accept)
		p := c.get(base)
		require.Equal(t, 200, p.status)
		require.Contains(t, p.body, tc.want, tc.accept)
	}
	// The switch wins over Accept-Language and is remembered.
	c := newClient(t, h)
	c.header.Set("Accept-Language", "en")
	p := c.get(base + "?lang=nl")
	require.Contains(t, p.body, `<html lang="nl">`)
	require.Contains(t, p.body, "€\u00a012,50")
	require.Equal(t, "nl", p.header.Get("Content-Language"))
	p = c.get(base)
	require.Contains(t, p.body, "Saldo")
	require.Contains(t, p.body, `href="`+base+`?lang=en"`)
	p = c.get(base + "?lang=en")
	require.Contains(t, p.body, "€12.50")
}

func TestCatalogs(t *testing.T) {
	// Every message a template uses exists in both languages.
	used := regexp.MustCompile(`\.T "([a-z_]+)"`)
	keys := map[string]bool{}
	err := fs.WalkDir(os.DirFS("templates"), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile("templates/" + path)
		if err != nil {
			return err
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = true
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for k := range keys {
		for _, l := range cardpage.Langs {
			require.NotEqual(t, k, l.T(k), "%s has no %s message", l, k)
		}
	}
	for _, k := range []string{"err_wrong_pin", "err_locked", "err_csrf", "topup_unavailable", "refund_done"} {
		require.NotEqual(t, cardpage.English.T(k), cardpage.Dutch.T(k), k)
	}
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		cents  int64
		en, nl string
	}{
		{0, "€0.00", "€\u00a00,00"},
		{5, "€0.05", "€\u00a00,05"},
		{1250, "€12.50", "€\u00a012,50"},
		{-350, "−€3.50", "−€\u00a03,50"},
		{123456789, "€1,234,567.89", "€\u00a01.234.567,89"},
	} {
		require.Equal(t, tc.en, cardpage.English.Money(tc.cents))
		require.Equal(t, tc.nl, cardpage.Dutch.Money(tc.cents))
	}
}
