// Package qrpin holds the QR half of a card's label secrets: the token, a
// random 128-bit value carried in the card's public URL and stored only as
// its SHA-256 hash. Its bytes cannot be printed by accident; only the label
// writer asks for the URL. (The PIN half is keys.PIN, stored only as a PIN
// verification value made in the HSM.)
package qrpin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TokenSize is the size of a QR token in bytes (128 bits).
const TokenSize = 16

// DefaultPublicURL is the base of card URLs when none is configured.
const DefaultPublicURL = "https://localhost:8443/c/"

var (
	// ErrRandom is returned when the random input has the wrong size.
	ErrRandom = errors.New("qrpin: wrong amount of random input")
	// ErrURL is returned for a public URL or card URL that cannot be used.
	ErrURL = errors.New("qrpin: bad card URL")
)

// Token is a card's QR token. It has no String method and formats as an
// address; compare tokens with Equal.
type Token struct {
	_ [0]func()
	b *[TokenSize]byte
}

// NewToken makes a token of TokenSize random bytes, copied.
func NewToken(random []byte) (Token, error) {
	if len(random) != TokenSize {
		return Token{}, ErrRandom
	}
	b := new([TokenSize]byte)
	copy(b[:], random)
	return Token{b: b}, nil
}

// Hash returns SHA-256 of the token bytes: what the database stores and
// what the API looks a card up by.
func (t Token) Hash() []byte {
	if t.b == nil {
		return nil
	}
	h := sha256.Sum256(t.b[:])
	return h[:]
}

// Equal reports in constant time whether t and o are the same token.
func (t Token) Equal(o Token) bool {
	if t.b == nil || o.b == nil {
		return t.b == o.b
	}
	return subtle.ConstantTimeCompare(t.b[:], o.b[:]) == 1
}

// encoded is the token as it appears in URLs: unpadded base64url, 22
// characters.
func (t Token) encoded() string { return base64.RawURLEncoding.EncodeToString(t.b[:]) }

// CheckPublicURL validates the base of card URLs: an absolute http(s) URL
// ending in '/', without query or fragment. Errors wrap ErrURL.
func CheckPublicURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/") {
		return fmt.Errorf("%w: public URL %q must be an http(s) URL ending in '/', such as %s", ErrURL, base, DefaultPublicURL)
	}
	return nil
}

// URL returns the card's URL, base followed by the token; it is as secret
// as the token and goes only into the QR code of the print file.
func (t Token) URL(base string) string { return base + t.encoded() }

// ParseURL extracts the token from a card URL made by URL with the same
// base. Errors wrap ErrURL.
func ParseURL(base, cardURL string) (Token, error) {
	enc, ok := strings.CutPrefix(cardURL, base)
	if !ok {
		return Token{}, fmt.Errorf("%w: the URL does not start with the public URL", ErrURL)
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(b) != TokenSize {
		return Token{}, fmt.Errorf("%w: no token after the public URL", ErrURL)
	}
	defer clear(b)
	return NewToken(b)
}

// Destroy overwrites the token bytes.
func (t Token) Destroy() {
	if t.b != nil {
		clear(t.b[:])
	}
}
