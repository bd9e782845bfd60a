// Package csrf is the double-submit CSRF protection of Loopcard's pages
// (the card pages and the HQ console): a random token in a __Host- cookie
// (Secure, Path=/, no Domain, SameSite=Strict, HttpOnly) and the same
// token in a hidden field, named Field, of every form. A cross-site page
// can neither read nor set the cookie, so it cannot forge the field;
// SameSite=Strict keeps the cookie off cross-site posts anyway, and
// Sec-Fetch-Site and Origin are checked where the browser sends them (a
// same-origin referrer policy lets it send the real Origin; "null" is
// refused).
package csrf

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
)

// Field is the name of the form field that carries the token.
const Field = "csrf"

const tokenBytes = 32

// Guard is the protection of one set of pages, each with its own cookie.
type Guard struct {
	// Cookie is the cookie's name; it must start with "__Host-".
	Cookie string
}

type slotKey struct{ cookie string }

// WithSlot gives the request a place for a token minted while serving it,
// so that one response sets at most one cookie.
func (g Guard) WithSlot(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), slotKey{g.Cookie}, new(string)))
}

// Token returns the request's token, setting a new cookie when there is
// none.
func (g Guard) Token(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(g.Cookie); err == nil && valid(c.Value) {
		return c.Value
	}
	slot, _ := r.Context().Value(slotKey{g.Cookie}).(*string)
	if slot != nil && *slot != "" {
		return *slot
	}
	b := make([]byte, tokenBytes)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: g.Cookie, Value: tok, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode})
	if slot != nil {
		*slot = tok
	}
	return tok
}

func valid(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == tokenBytes
}

// Check reports whether a form post carries the cookie's token and comes
// from this site. The form must have been parsed.
func (g Guard) Check(r *http.Request) bool {
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
	c, err := r.Cookie(g.Cookie)
	if err != nil || !valid(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(r.PostForm.Get(Field)), []byte(c.Value)) == 1
}
