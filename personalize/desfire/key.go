package desfire

import (
	"crypto/subtle"
	"fmt"
)

// KeyType is the cipher of a card key.
type KeyType byte

// Key types. KeyDES is a 16-byte 2K3DES key with equal halves (single DES),
// as the factory default key of zeros.
const (
	KeyDES KeyType = iota + 1
	Key2K3DES
	KeyAES
	Key3K3DES
)

func (t KeyType) String() string {
	switch t {
	case KeyDES:
		return "DES"
	case Key2K3DES:
		return "2K3DES"
	case KeyAES:
		return "AES"
	case Key3K3DES:
		return "3K3DES"
	}
	return "invalid"
}

// Key is a card key. Its bytes sit behind an unexported pointer, so printing
// a Key shows an address, never the key; it has no String method. The zero
// Key is "no key".
type Key struct{ m *keyMaterial }

type keyMaterial struct {
	typ     KeyType
	b       []byte
	version byte
}

// NewAESKey copies a 16-byte AES key with its key version.
func NewAESKey(b []byte, version byte) (Key, error) {
	if len(b) != 16 {
		return Key{}, fmt.Errorf("%w: AES key must be 16 bytes, got %d", ErrMalformed, len(b))
	}
	return Key{&keyMaterial{typ: KeyAES, b: append([]byte(nil), b...), version: version}}, nil
}

// NewDESKey copies an 8-byte DES key, a 16-byte 2K3DES key (single DES if
// its halves are equal) or a 24-byte 3K3DES key. The key version of DES keys
// lives in parity bits.
func NewDESKey(b []byte) (Key, error) {
	switch len(b) {
	case 8:
		k := append(append([]byte(nil), b...), b...)
		return Key{&keyMaterial{typ: KeyDES, b: k}}, nil
	case 16:
		t := Key2K3DES
		if isSingleDES(b) {
			t = KeyDES
		}
		return Key{&keyMaterial{typ: t, b: append([]byte(nil), b...)}}, nil
	case 24:
		return Key{&keyMaterial{typ: Key3K3DES, b: append([]byte(nil), b...)}}, nil
	}
	return Key{}, fmt.Errorf("%w: DES key must be 8, 16 or 24 bytes, got %d", ErrMalformed, len(b))
}

// DefaultDESKey is the factory PICC master key: DES, all zeros.
func DefaultDESKey() Key {
	k, _ := NewDESKey(make([]byte, 16))
	return k
}

// Valid reports whether k holds a key.
func (k Key) Valid() bool { return k.m != nil }

// Type is the key's cipher (0 for the zero Key).
func (k Key) Type() KeyType {
	if k.m == nil {
		return 0
	}
	return k.m.typ
}

// Version is the AES key version (0 for DES keys).
func (k Key) Version() byte {
	if k.m == nil {
		return 0
	}
	return k.m.version
}

// Equal compares two keys in constant time (type, version and bytes).
func (k Key) Equal(o Key) bool {
	if k.m == nil || o.m == nil {
		return k.m == o.m
	}
	return k.m.typ == o.m.typ && k.m.version == o.m.version && subtle.ConstantTimeCompare(k.m.b, o.m.b) == 1
}

// Wipe zeroes the key bytes; the Key (and its copies) is unusable afterwards.
func (k Key) Wipe() {
	if k.m != nil {
		clear(k.m.b)
		k.m.typ = 0
	}
}

func (k Key) bytes() []byte {
	if k.m == nil {
		return nil
	}
	return k.m.b
}
