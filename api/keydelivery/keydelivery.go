// Package keydelivery wraps a symmetric card key (an event debit key for a
// terminal's session, or a per-card key for one load) for an enrolled
// terminal or a store: HPKE (RFC 9180) base mode to its X25519 or P-256
// key-agreement key, HKDF-SHA256 and AES-256-GCM, with everything the key
// is for (kind, organizer, terminal, event, card, key id, expiry, and for a
// store the store and the load) bound as the HPKE info, so a wrapped key
// cannot be replayed for another purpose or with a later expiry.
package keydelivery

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key-agreement algorithms a terminal may enrol.
const (
	X25519 = "x25519"
	P256   = "p256"
)

// Kinds of delivered keys.
const (
	KindSession = "session" // the event debit key, for a terminal's session
	KindCredit  = "credit"  // a per-card credit key, for one load
	// Kinds delivered to a store (Binding.Store, not Terminal).
	KindStoreCredit = "store_credit" // a card's credit key (key 2), for one load (Binding.Load)
	KindRead        = "read"         // a card's read key (key 3): card info and records
	KindBalance     = "balance"      // a card's credit key, to read its balance and sequence
)

// Errors callers branch on.
var (
	// ErrKey: an unknown algorithm or a public key that does not parse.
	ErrKey = errors.New("keydelivery: bad key-agreement key")
	// ErrOpen: the wrapped key does not open with this key and binding.
	ErrOpen = errors.New("keydelivery: wrapped key does not open")
	// ErrExpired: the wrapped key is past its expiry.
	ErrExpired = errors.New("keydelivery: key expired")
)

// Binding is what a delivered key is for. It travels in clear beside the
// wrapped key and is authenticated by it.
type Binding struct {
	Kind      string    `json:"kind"`
	Organizer int64     `json:"org"`
	Terminal  string    `json:"terminal"`
	Event     string    `json:"event"`
	Card      []byte    `json:"card,omitempty"`
	KeyID     string    `json:"key_id"`
	Expires   time.Time `json:"expires_at"`
	// Store and Load bind a key delivered to a store: the store, and the
	// load a credit key is for.
	Store string `json:"store,omitempty"`
	Load  string `json:"load_id,omitempty"`
}

// info encodes the binding unambiguously (each field length-prefixed).
func (b Binding) info() []byte {
	out := []byte("loopcard key delivery v1")
	field := func(p []byte) {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	field([]byte(b.Kind))
	out = binary.BigEndian.AppendUint64(out, uint64(b.Organizer))
	field([]byte(b.Terminal))
	field([]byte(b.Event))
	field(b.Card)
	field([]byte(b.KeyID))
	out = binary.BigEndian.AppendUint64(out, uint64(b.Expires.Unix()))
	if b.Store != "" || b.Load != "" {
		// Appended only when set: a terminal's binding encodes as before.
		field([]byte(b.Store))
		field([]byte(b.Load))
	}
	return out
}

// Wrapped is a delivered key: the binding and the HPKE output (the
// encapsulated key followed by the ciphertext of the 16-byte key).
type Wrapped struct {
	Binding
	Alg        string `json:"alg"`
	Ciphertext []byte `json:"ciphertext"`
}

func curve(alg string) (ecdh.Curve, error) {
	switch alg {
	case X25519:
		return ecdh.X25519(), nil
	case P256:
		return ecdh.P256(), nil
	}
	return nil, fmt.Errorf("%w: algorithm %q (want %s or %s)", ErrKey, alg, X25519, P256)
}

// ParsePublicKey checks a terminal's key-agreement public key: 32 bytes for
// X25519, an uncompressed point of 65 bytes for P-256.
func ParsePublicKey(alg string, pub []byte) (*ecdh.PublicKey, error) {
	c, err := curve(alg)
	if err != nil {
		return nil, err
	}
	k, err := c.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key does not parse", ErrKey, alg)
	}
	return k, nil
}

// Wrap encrypts key for the terminal's public key pub of algorithm alg,
// bound to b.
func Wrap(alg string, pub []byte, b Binding, key []byte) (*Wrapped, error) {
	k, err := ParsePublicKey(alg, pub)
	if err != nil {
		return nil, err
	}
	hk, err := hpke.NewDHKEMPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	ct, err := hpke.Seal(hk, hpke.HKDFSHA256(), hpke.AES256GCM(), b.info(), key)
	if err != nil {
		return nil, fmt.Errorf("keydelivery: seal: %w", err)
	}
	return &Wrapped{Binding: b, Alg: alg, Ciphertext: ct}, nil
}

// Unwrap is the terminal's side: it opens w with the terminal's private key
// and refuses a key past its expiry at now. The caller owns the returned
// bytes and should clear them when done.
func Unwrap(priv *ecdh.PrivateKey, w *Wrapped, now time.Time) ([]byte, error) {
	if !now.Before(w.Expires) {
		return nil, ErrExpired
	}
	hk, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	key, err := hpke.Open(hk, hpke.HKDFSHA256(), hpke.AES256GCM(), w.info(), w.Ciphertext)
	if err != nil {
		return nil, ErrOpen
	}
	return key, nil
}
