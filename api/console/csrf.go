package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// CSRF protection is a double submit, as the card pages do it: a random
// token in a __Host- cookie (Secure, Path=/, no Domain, SameSite=Strict,
// HttpOnly) and the same token in a hidden field of every form; the
// browser's Sec-Fetch-Site and Origin are checked where it sends them.
// The session cookie is SameSite=Strict too.
const (
	csrfCookie    = "__Host-lc_console_csrf"
	csrfField     = "csrf"
	csrfBytes     = 32
	sessionCookie = "__Host-lc_staff"
)

type csrfKey struct{}

func withCSRFSlot(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), csrfKey{}, new(string)))
}

// csrfToken returns the request's CSRF token, setting a new cookie when
// there is none.
func csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validCSRF(c.Value) {
		return c.Value
	}
	slot, _ := r.Context().Value(csrfKey{}).(*string)
	if slot != nil && *slot != "" {
		return *slot
	}
	b := make([]byte, csrfBytes)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	if slot != nil {
		*slot = tok
	}
	return tok
}

func validCSRF(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == csrfBytes
}

// checkCSRF reports whether a form post carries the cookie's token and
// comes from this site. The form must have been parsed.
func checkCSRF(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !validCSRF(c.Value) {
		return false
	}
	field := r.PostForm.Get(csrfField)
	return subtle.ConstantTimeCompare([]byte(field), []byte(c.Value)) == 1
}
