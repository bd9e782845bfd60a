package keyderiv

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/loopcard/loopcard/keys/cmac"
)

// AESKey is an AES-128 key held in process memory: a per-card diversified
// key that a station must write to a card, or an event debit key. It has no
// String method and formats as an address; compare keys with Equal.
//
// The bytes sit behind a pointer in an unexported field: fmt, slog and
// encoding/json then show an address or nothing, never the bytes, without
// any String or Format method that could be got wrong. The zero-length func
// array makes keys incomparable with ==.
type AESKey struct {
	_ [0]func()
	k *[16]byte
}

// ErrKeyLength is returned when bytes of the wrong length are given as a key.
var ErrKeyLength = errors.New("an AES-128 key is 16 bytes")

// NewAESKey copies b into a new AESKey. It returns ErrKeyLength unless b is
// 16 bytes.
func NewAESKey(b []byte) (AESKey, error) {
	if len(b) != 16 {
		return AESKey{}, ErrKeyLength
	}
	k := new([16]byte)
	copy(k[:], b)
	return AESKey{k: k}, nil
}

func aesKeyFrom(b [16]byte) AESKey {
	k := new([16]byte)
	*k = b
	return AESKey{k: k}
}

// Bytes returns a copy of the key, for the card protocol code that must use
// it. Callers must not log or store it and should clear it when done.
func (k AESKey) Bytes() []byte {
	if k.k == nil {
		return nil
	}
	b := make([]byte, 16)
	copy(b, k.k[:])
	return b
}

// IsZero reports whether k holds no key.
func (k AESKey) IsZero() bool { return k.k == nil }

// Equal reports in constant time whether k and o hold the same key.
func (k AESKey) Equal(o AESKey) bool {
	if k.k == nil || o.k == nil {
		return k.k == o.k
	}
	return subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// KCV returns the key check value: the first 3 bytes of AES-CMAC(key, 16 zero
// bytes) as 6 upper-case hex digits.
func (k AESKey) KCV() string {
	if k.k == nil {
		return ""
	}
	return KCV(k.k[:])
}

// Destroy overwrites the key bytes with zeros.
func (k AESKey) Destroy() {
	if k.k != nil {
		clear(k.k[:])
	}
}

// KCV is the key check value of an AES key of any size computed in Go: the
// first 3 bytes of AES-CMAC(key, 0^16), upper-case hex; "" for a key of an
// invalid size.
func KCV(key []byte) string {
	sum, err := cmac.Sum(key, make([]byte, 16))
	if err != nil {
		return ""
	}
	return FormatKCV(sum[:])
}

// FormatKCV writes the first 3 bytes of a MAC over the KCV input as a key
// check value: 6 upper-case hex digits.
func FormatKCV(mac []byte) string {
	return strings.ToUpper(hex.EncodeToString(mac[:3]))
}
