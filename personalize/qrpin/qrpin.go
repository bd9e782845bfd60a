// Package qrpin makes the two secrets printed on a card's label: the QR
// token, a random 128-bit value carried in the card's public URL and stored
// only as its SHA-256 hash, and the 6-digit PIN, stored only as a PIN
// verification value computed by the HSM. Both are types whose bytes cannot
// be printed by accident; only the label writer asks for them in clear.
package qrpin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TokenSize is the size of a QR token in bytes (128 bits).
const TokenSize = 16

// PINDigits is the number of digits of a PIN.
const PINDigits = 6

// DefaultPublicURL is the base of card URLs when none is configured.
const DefaultPublicURL = "https://localhost:8443/c/"

var (
	// ErrRandom is returned when the random input has the wrong size.
	ErrRandom = errors.New("qrpin: wrong amount of random input")
	// ErrURL is returned for a public URL or card URL that cannot be used.
	ErrURL = errors.New("qrpin: bad card URL")
	// ErrPIN is returned for a string that is not a 6-digit PIN.
	ErrPIN = errors.New("qrpin: not a 6-digit PIN")
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

// PINRandomSize is how many random bytes NewPIN takes.
const PINRandomSize = 8

// PIN is a card's 6-digit PIN. It has no String method and formats as an
// address.
type PIN struct {
	_ [0]func()
	d *[PINDigits]byte
}

// NewPIN turns PINRandomSize random bytes into a uniformly distributed PIN
// (a 64-bit number modulo 10^6: the bias is below 10^-13).
func NewPIN(random []byte) (PIN, error) {
	if len(random) != PINRandomSize {
		return PIN{}, ErrRandom
	}
	n := binary.BigEndian.Uint64(random) % 1000000
	d := new([PINDigits]byte)
	for i := PINDigits - 1; i >= 0; i-- {
		d[i] = '0' + byte(n%10)
		n /= 10
	}
	return PIN{d: d}, nil
}

// ParsePIN reads 6 decimal digits. Errors wrap ErrPIN.
func ParsePIN(s string) (PIN, error) {
	if len(s) != PINDigits {
		return PIN{}, ErrPIN
	}
	d := new([PINDigits]byte)
	for i := range PINDigits {
		if s[i] < '0' || s[i] > '9' {
			return PIN{}, ErrPIN
		}
		d[i] = s[i]
	}
	return PIN{d: d}, nil
}

// IsZero reports whether p holds no PIN.
func (p PIN) IsZero() bool { return p.d == nil }

// Digits returns the PIN in clear, for the print files and for computing
// its verification value only.
func (p PIN) Digits() string {
	if p.d == nil {
		return ""
	}
	return string(p.d[:])
}

// Equal reports in constant time whether p and o are the same PIN.
func (p PIN) Equal(o PIN) bool {
	if p.d == nil || o.d == nil {
		return p.d == o.d
	}
	return subtle.ConstantTimeCompare(p.d[:], o.d[:]) == 1
}

// Destroy overwrites the token bytes.
func (t Token) Destroy() {
	if t.b != nil {
		clear(t.b[:])
	}
}

// Destroy overwrites the PIN digits.
func (p PIN) Destroy() {
	if p.d != nil {
		clear(p.d[:])
	}
}
