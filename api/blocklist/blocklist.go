// Package blocklist is the wire format of an organizer's card blocklist,
// shared by the server that signs it and the terminals that check cards
// against it offline: the compact encoding of a set of card ids, the
// statement hq-sign signs for a version of the list, and a List that takes
// signed deltas. It imports no server, database or cgo package.
package blocklist

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Card ids are 4 to 10 bytes (a card's UID).
const (
	MinCardID = 4
	MaxCardID = 10
)

// ErrMalformed: an encoded list or a delta does not parse.
var ErrMalformed = errors.New("blocklist: malformed")

// ErrSignature: a list's signature does not verify with the pinned HQ key.
var ErrSignature = errors.New("blocklist: signature does not verify with the HQ key pinned at enrolment")

// ErrVersion: a delta starts from a version the list does not hold.
var ErrVersion = errors.New("blocklist: delta does not start at the list's version")

// Encode encodes card ids as the list carries them: sorted, without
// repeats, each as one length byte and the id. 5,000 cards of 7 bytes take
// 40,000 bytes.
func Encode(ids [][]byte) []byte {
	s := slices.Clone(ids)
	slices.SortFunc(s, bytes.Compare)
	s = slices.CompactFunc(s, bytes.Equal)
	n := 0
	for _, id := range s {
		n += 1 + len(id)
	}
	out := make([]byte, 0, n)
	for _, id := range s {
		out = append(out, byte(len(id)))
		out = append(out, id...)
	}
	return out
}

// Decode parses an encoding of Encode; ids must be sorted and unique.
// The ids returned alias b.
func Decode(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		if n < MinCardID || n > MaxCardID || len(b) < 1+n {
			return nil, fmt.Errorf("%w: card id of %d bytes", ErrMalformed, n)
		}
		id := b[1 : 1+n : 1+n]
		if k := len(out); k > 0 && bytes.Compare(out[k-1], id) >= 0 {
			return nil, fmt.Errorf("%w: card ids not sorted", ErrMalformed)
		}
		out = append(out, id)
		b = b[1+n:]
	}
	return out, nil
}

// Statement is what hq-sign signs for version of org's list, which holds
// count cards whose encoding (Encode) hashes to digest (SHA-256).
func Statement(org int64, version uint64, count int, digest [32]byte) []byte {
	b := make([]byte, 0, 64+32)
	b = append(b, "loopcard-blocklist-v1\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(org))
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(count))
	return append(b, digest[:]...)
}

// Sign signs the statement with an Ed25519 key (the message itself) or an
// ECDSA P-256 key (its SHA-256 digest), as keys.Signer takes them.
func Sign(s crypto.Signer, statement []byte) ([]byte, error) {
	switch s.Public().(type) {
	case ed25519.PublicKey:
		return s.Sign(nil, statement, crypto.Hash(0))
	case *ecdsa.PublicKey:
		d := sha256.Sum256(statement)
		return s.Sign(nil, d[:], crypto.SHA256)
	}
	return nil, errors.New("blocklist: hq-sign is neither Ed25519 nor ECDSA")
}

// Verify checks sig over statement with the HQ public key.
func Verify(pub crypto.PublicKey, statement, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if ed25519.Verify(k, statement, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		d := sha256.Sum256(statement)
		if ecdsa.VerifyASN1(k, d[:], sig) {
			return nil
		}
	default:
		return fmt.Errorf("blocklist: the pinned HQ key is a %T", pub)
	}
	return ErrSignature
}

// Delta takes a list from version From to Version: 0 for From is the
// whole list. It is apitype.Blocklist without the package dependency.
type Delta struct {
	From, Version uint64
	Add, Remove   []byte // encoded card ids (Encode)
	Count         int    // cards on the list at Version
	Signature     []byte // hq-sign over Statement(org, Version, Count, digest)
}

// List is a verified version of an organizer's blocklist. Contains is
// safe for concurrent use; Apply returns a new List.
type List struct {
	Org       int64
	Version   uint64
	Signature []byte
	set       map[string]struct{}
}

// Empty is the list a terminal holds before its first delta.
func Empty(org int64) *List { return &List{Org: org, set: map[string]struct{}{}} }

// Len is the number of cards on the list.
func (l *List) Len() int { return len(l.set) }

// Contains reports whether card is on the list.
func (l *List) Contains(card []byte) bool {
	_, ok := l.set[string(card)]
	return ok
}

// Encoded returns the list's cards, encoded.
func (l *List) Encoded() []byte {
	ids := make([][]byte, 0, len(l.set))
	for id := range l.set {
		ids = append(ids, []byte(id))
	}
	return Encode(ids)
}

// Apply applies d to the list and verifies the result against d's
// signature with the HQ key pub. It fails with ErrVersion when d starts
// at another version (nothing is applied), ErrMalformed or ErrSignature.
func (l *List) Apply(pub crypto.PublicKey, d Delta) (*List, error) {
	if d.From != 0 && d.From != l.Version {
		return nil, fmt.Errorf("%w: delta from %d, list at %d", ErrVersion, d.From, l.Version)
	}
	add, err := Decode(d.Add)
	if err != nil {
		return nil, err
	}
	rm, err := Decode(d.Remove)
	if err != nil {
		return nil, err
	}
	next := &List{Org: l.Org, Version: d.Version, Signature: bytes.Clone(d.Signature), set: make(map[string]struct{}, d.Count)}
	if d.From != 0 {
		for id := range l.set {
			next.set[id] = struct{}{}
		}
	}
	for _, id := range rm {
		delete(next.set, string(id))
	}
	for _, id := range add {
		next.set[string(id)] = struct{}{}
	}
	enc := next.Encoded()
	if err := Verify(pub, Statement(l.Org, d.Version, len(next.set), sha256.Sum256(enc)), d.Signature); err != nil {
		return nil, err
	}
	return next, nil
}

// Load rebuilds a List from its encoded cards and signature as a terminal
// stored them, verifying the signature.
func Load(pub crypto.PublicKey, org int64, version uint64, encoded, sig []byte) (*List, error) {
	return Empty(org).Apply(pub, Delta{From: 0, Version: version, Add: encoded, Count: 0, Signature: sig})
}
