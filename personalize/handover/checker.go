package handover

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Errors of Checker, for callers to branch on.
var (
	// ErrUnknownSigner: the entry names a key that is neither HQ's nor a
	// store key enrolled before it.
	ErrUnknownSigner = errors.New("unknown signer")
	// ErrNotAllowed: the signer may not make this kind of entry.
	ErrNotAllowed = errors.New("signer not allowed to make this entry")
	// ErrBadSignature: a signature does not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrNotSealed: unsigned entries not covered by a seal of their signer.
	ErrNotSealed = errors.New("unsigned entries not sealed")
	// ErrBadSeal: a seal that does not match the entries before it.
	ErrBadSeal = errors.New("seal does not match the entries it covers")
)

// SigCheck is one Ed25519 signature to check: Checker returns them so
// that callers can verify many in parallel.
type SigCheck struct {
	Index int64
	Key   ed25519.PublicKey
	Msg   []byte
	Sig   []byte
}

// Verify checks the signature.
func (s *SigCheck) Verify() error {
	if !ed25519.Verify(s.Key, s.Msg, s.Sig) {
		return fmt.Errorf("%w: entry %d", ErrBadSignature, s.Index)
	}
	return nil
}

// storeKey is a store's enrolled key.
type storeKey struct {
	store string
	key   PublicKey
}

// Checker applies the signing rules to a log's entries in order: who may
// sign what, enrolled store keys, and seals. It does not check the
// signatures itself: Add returns them as SigChecks. It is the one place
// where these rules live, used by handoverdb.Log before appending and by the auditor.
type Checker struct {
	hq      PublicKey
	hqID    string
	stores  map[string]storeKey // key id -> store key
	next    int64               // index of the next entry
	pending []tlog.Hash         // leaves of unsigned entries since the last signed one
	first   int64               // index of pending[0]
	signer  string              // signer of pending entries
}

// NewChecker starts checking a log at entry index next, with HQ's key.
func NewChecker(hq PublicKey, next int64) *Checker {
	return &Checker{hq: hq, hqID: hq.ID(), stores: map[string]storeKey{}, next: next}
}

// AddStoreKey records a store key enrolled before the first entry checked.
func (c *Checker) AddStoreKey(store string, k PublicKey) {
	c.stores[k.ID()] = storeKey{store: store, key: k}
}

// StoreKeys returns the enrolled store keys by key id.
func (c *Checker) StoreKeys() map[string]PublicKey {
	out := make(map[string]PublicKey, len(c.stores))
	for id, k := range c.stores {
		out[id] = k.key
	}
	return out
}

// StoreOf returns the store a key id belongs to ("" for HQ or unknown).
func (c *Checker) StoreOf(keyID string) string { return c.stores[keyID].store }

// Next is the index of the next entry Add expects.
func (c *Checker) Next() int64 { return c.next }

// EntryError is an error about the entry at Index.
type EntryError struct {
	Index int64
	Err   error
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %d: %v", e.Index, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Add checks entry e, with leaf hash leaf, as the next entry of the log. It
// returns the signature to verify, or nil for an unsigned entry that a
// later seal must cover. Errors are *EntryError wrapping ErrUnknownSigner,
// ErrNotAllowed, ErrNotSealed or ErrBadSeal.
func (c *Checker) Add(e Entry, leaf tlog.Hash) (*SigCheck, error) {
	i := c.next
	fail := func(err error) (*SigCheck, error) { return nil, &EntryError{Index: i, Err: err} }
	key, err := c.allowed(e)
	if err != nil {
		return fail(err)
	}
	if e.Sig == "" && e.Type == TypeSeal {
		return fail(fmt.Errorf("%w: the seal itself is not signed", ErrBadSeal))
	}
	if e.Sig == "" {
		if len(c.pending) > 0 && e.Signer != c.signer {
			return fail(fmt.Errorf("%w: entries %d to %d by %s are followed by one of %s", ErrNotSealed, c.first, i-1, c.signer, e.Signer))
		}
		if len(c.pending) == 0 {
			c.first, c.signer = i, e.Signer
		}
		c.pending = append(c.pending, leaf)
		c.next++
		return nil, nil
	}
	if e.Type == TypeSeal {
		if int64(len(c.pending)) != *e.Covers {
			return fail(fmt.Errorf("%w: it covers %d entries, %d unsigned entries precede it", ErrBadSeal, *e.Covers, len(c.pending)))
		}
		if e.Signer != c.signer {
			return fail(fmt.Errorf("%w: sealed by %s, entries %d to %d are by %s", ErrBadSeal, e.Signer, c.first, i-1, c.signer))
		}
		if want := SealHash(c.pending); want.String() != e.Hash {
			return fail(fmt.Errorf("%w: hash of entries %d to %d differs", ErrBadSeal, c.first, i-1))
		}
		c.pending = c.pending[:0]
	} else if len(c.pending) > 0 {
		return fail(fmt.Errorf("%w: entries %d to %d", ErrNotSealed, c.first, i-1))
	}
	if e.Type == TypeKeyEnrolled {
		k, err := parseVkey(e.Key)
		if err != nil {
			return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
		}
		if k.Name != StoreKeyName(e.Org, e.Store) {
			return fail(fmt.Errorf("%w: store %s key is named %q, want %q", ErrMalformed, e.Store, k.Name, StoreKeyName(e.Org, e.Store)))
		}
		if k.ID() == c.hqID {
			return fail(fmt.Errorf("%w: HQ's key cannot be a store key", ErrNotAllowed))
		}
		if old, ok := c.stores[k.ID()]; ok {
			return fail(fmt.Errorf("%w: key %s is already enrolled for store %s", ErrNotAllowed, k.ID(), old.store))
		}
		c.stores[k.ID()] = storeKey{store: e.Store, key: k}
	}
	msg, err := SignedMessage(e)
	if err != nil {
		return fail(err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Sig)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	c.next++
	return &SigCheck{Index: i, Key: key, Msg: msg, Sig: sig}, nil
}

// Finish reports unsigned entries at the end that no seal covers.
func (c *Checker) Finish() error {
	if len(c.pending) > 0 {
		return &EntryError{Index: c.first, Err: fmt.Errorf("%w: entries %d to %d", ErrNotSealed, c.first, c.next-1)}
	}
	return nil
}

// allowed returns the public key of e's signer if that signer may make e,
// as the type's Kind says (Signers): HQ; the store the entry names, as
// itself; or, for a seal, anyone (Add holds a seal to its signer's own
// entries).
func (c *Checker) allowed(e Entry) (ed25519.PublicKey, error) {
	isHQ := e.Signer == c.hqID
	sk, isStore := c.stores[e.Signer]
	if !isHQ && !isStore {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSigner, e.Signer)
	}
	key := c.hq.Key
	if isStore {
		key = sk.key.Key
	}
	var who Signers
	if k := kindOf(e.Type); k != nil {
		who = k.Signers
	}
	switch {
	case who&SignedByAnyone != 0,
		isHQ && who&SignedByHQ != 0,
		isStore && who&SignedByStore != 0 && sk.store == e.Store:
		return key, nil
	}
	signer := "HQ"
	if isStore {
		signer = "store " + sk.store
	}
	return nil, fmt.Errorf("%w: %s may not sign %s for store %q", ErrNotAllowed, signer, e.Type, e.Store)
}
