package handover

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/loopcard/loopcard/personalize"
)

// algEd25519 is the signed-note algorithm byte of Ed25519.
const algEd25519 = 0x01

// keyHash is the signed-note key hash: the first 4 bytes of
// SHA-256(name || "\n" || 0x01 || public key).
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write([]byte{algEd25519})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// KeyID names a key as entries do: "NAME+HASH", HASH the signed-note key
// hash in 8 hex digits.
func KeyID(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x", name, keyHash(name, pub))
}

// ParseKeyID splits a key id into name and hash.
func ParseKeyID(id string) (name string, hash uint32, err error) {
	i := strings.LastIndexByte(id, '+')
	if i < 1 || len(id)-i-1 != 8 {
		return "", 0, fmt.Errorf("key id %q is not NAME+HASH", id)
	}
	name = id[:i]
	if !validKeyName(name) {
		return "", 0, fmt.Errorf("key id %q: bad key name", id)
	}
	hb, err := hex.DecodeString(id[i+1:])
	if err != nil || strings.ToLower(id[i+1:]) != id[i+1:] {
		return "", 0, fmt.Errorf("key id %q: hash is not 8 lower-case hex digits", id)
	}
	return name, binary.BigEndian.Uint32(hb), nil
}

// validKeyName follows the signed-note rules: non-empty, no '+', no space
// or control characters; we also keep it to printable ASCII.
func validKeyName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == '+' {
			return false
		}
	}
	return true
}

// Vkey formats an Ed25519 public key as a signed-note verifier key,
// "NAME+HASH+BASE64(0x01 || key)".
func Vkey(name string, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, keyHash(name, pub),
		base64.StdEncoding.EncodeToString(append([]byte{algEd25519}, pub...)))
}

// PublicKey is a parsed verifier key.
type PublicKey struct {
	Name string
	Key  ed25519.PublicKey
}

// ID is the key id entries use for it.
func (k PublicKey) ID() string { return KeyID(k.Name, k.Key) }

// Vkey is its verifier key string.
func (k PublicKey) Vkey() string { return Vkey(k.Name, k.Key) }

// parseVkey parses an Ed25519 signed-note verifier key and checks its hash.
func parseVkey(vkey string) (PublicKey, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return PublicKey{}, errors.New("verifier key is not NAME+HASH+KEY")
	}
	if !validKeyName(parts[0]) {
		return PublicKey{}, errors.New("verifier key: bad name")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != algEd25519 {
		return PublicKey{}, errors.New("verifier key is not an Ed25519 key")
	}
	k := PublicKey{Name: parts[0], Key: ed25519.PublicKey(raw[1:])}
	if k.Vkey() != vkey {
		return PublicKey{}, errors.New("verifier key: hash does not match the key")
	}
	return k, nil
}

// ParseVkey parses an Ed25519 signed-note verifier key.
func ParseVkey(vkey string) (PublicKey, error) { return parseVkey(strings.TrimSpace(vkey)) }

// Signer signs entries and, for HQ, checkpoints. It wraps an Ed25519
// crypto.Signer, such as hq-sign in the HSM (*keys.Signer) or a store key,
// and implements note.Signer.
type Signer struct {
	name string
	pub  ed25519.PublicKey
	s    crypto.Signer
}

var _ note.Signer = (*Signer)(nil)

// ErrNotEd25519: the key is not an Ed25519 key. Signed notes and entries
// are Ed25519 only.
var ErrNotEd25519 = errors.New("not an Ed25519 key: the handover log signs with Ed25519 (make hq-sign an Ed25519 key)")

// NewSigner returns a Signer named name over s, whose public key must be
// Ed25519. Errors wrap ErrNotEd25519.
func NewSigner(name string, s crypto.Signer) (*Signer, error) {
	if !validKeyName(name) {
		return nil, fmt.Errorf("handover: key name %q: no '+', spaces or control characters", name)
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("handover: key %s: %w", name, ErrNotEd25519)
	}
	return &Signer{name: name, pub: pub, s: s}, nil
}

// Name is the key name.
func (s *Signer) Name() string { return s.name }

// KeyHash is the signed-note key hash.
func (s *Signer) KeyHash() uint32 { return keyHash(s.name, s.pub) }

// ID is the key id entries carry in "signer".
func (s *Signer) ID() string { return KeyID(s.name, s.pub) }

// PublicKey returns the verifier key.
func (s *Signer) PublicKey() PublicKey { return PublicKey{Name: s.name, Key: s.pub} }

// Sign signs msg with Ed25519 (the message itself, not a digest).
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	sig, err := s.s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("handover: sign with %s: %w", s.ID(), err)
	}
	if !ed25519.Verify(s.pub, msg, sig) {
		return nil, fmt.Errorf("handover: key %s made a signature that does not verify", s.ID())
	}
	return sig, nil
}

// SignEntry sets e.Signer and e.Sig. e must be valid.
func (s *Signer) SignEntry(e *Entry) error {
	e.Signer = s.ID()
	e.Sig = ""
	msg, err := SignedMessage(*e)
	if err != nil {
		return err
	}
	sig, err := s.Sign(msg)
	if err != nil {
		return err
	}
	e.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// VerifyEntry checks e's own signature with k (ignoring e.Signer).
func VerifyEntry(k ed25519.PublicKey, e Entry) bool {
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	msg, err := SignedMessage(e)
	if err != nil {
		return false
	}
	return ed25519.Verify(k, msg, sig)
}

// DefaultOrigin is the origin of organizer org's log.
func DefaultOrigin(org int64) string { return fmt.Sprintf("loopcard/handover/org-%d", org) }

// StoreKeyName is the key name of a store's key.
func StoreKeyName(org int64, store string) string {
	return fmt.Sprintf("loopcard-org%d-store-%s", org, store)
}

// GenerateKeyFile creates a new Ed25519 key named name in a new file path
// with mode 0600, in the signed-note private key format
// ("PRIVATE+KEY+NAME+HASH+BASE64(0x01 || seed)"). It refuses to replace an
// existing file. It returns the public key; the private key is never
// returned or printed.
func GenerateKeyFile(path, name string) (PublicKey, error) {
	if !validKeyName(name) {
		return PublicKey{}, fmt.Errorf("handover: key name %q: no '+', spaces or control characters", name)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PublicKey{}, fmt.Errorf("handover: generate key: %w", err)
	}
	seed := priv.Seed()
	defer clear(seed)
	defer clear(priv)
	raw := append([]byte{algEd25519}, seed...)
	defer clear(raw)
	text := fmt.Sprintf("PRIVATE+KEY+%s+%08x+%s\n", name, keyHash(name, pub), base64.StdEncoding.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return PublicKey{}, fmt.Errorf("handover: key file: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return PublicKey{}, fmt.Errorf("handover: key file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return PublicKey{}, fmt.Errorf("handover: key file: %w", err)
	}
	return PublicKey{Name: name, Key: pub}, nil
}

// fileKey is a private key read from a key file: a crypto.Signer whose
// bytes stay unexported, behind a pointer so that fmt prints an address.
type fileKey struct{ priv *ed25519.PrivateKey }

func (k *fileKey) Public() crypto.PublicKey { return k.priv.Public() }

func (k *fileKey) Sign(r io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.priv.Sign(r, msg, opts)
}

// ErrKeyFile: the key file is unreadable, not private, or not a key.
var ErrKeyFile = errors.New("bad key file")

// OpenKeyFile reads a key written by GenerateKeyFile. The file must not be
// readable by group or others. Errors wrap ErrKeyFile and never contain key
// material.
func OpenKeyFile(path string) (*Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by others (mode %o): chmod 600 it", ErrKeyFile, path, st.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	defer clear(text)
	parts := bytes.SplitN(bytes.TrimSpace(text), []byte("+"), 5)
	if len(parts) != 5 || string(parts[0]) != "PRIVATE" || string(parts[1]) != "KEY" {
		return nil, fmt.Errorf("%w: %s is not a PRIVATE+KEY file", ErrKeyFile, path)
	}
	name := string(parts[2])
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(parts[4])))
	defer clear(raw)
	n, err := base64.StdEncoding.Decode(raw, parts[4])
	if err != nil || n != 1+ed25519.SeedSize || raw[0] != algEd25519 || !validKeyName(name) {
		return nil, fmt.Errorf("%w: %s is not an Ed25519 key", ErrKeyFile, path)
	}
	priv := ed25519.NewKeyFromSeed(raw[1:n])
	k := &fileKey{priv: &priv}
	s, err := NewSigner(name, k)
	if err != nil {
		return nil, err
	}
	if fmt.Sprintf("%08x", s.KeyHash()) != string(parts[3]) {
		return nil, fmt.Errorf("%w: %s: key hash does not match the key", ErrKeyFile, path)
	}
	return s, nil
}

// ParseCardNumber parses a card number "BATCH-SLOT" in its canonical form,
// as entries carry it.
func ParseCardNumber(s string) (personalize.CardID, error) { return parseCardNumber(s) }

// parseCardNumber parses a card number "BATCH-SLOT" in its canonical form.
func parseCardNumber(s string) (personalize.CardID, error) {
	id, err := personalize.ParseCardID(s)
	if err != nil {
		return 0, err
	}
	// Canonical: the batch without sign or leading zeros, five digits.
	b, slot, _ := strings.Cut(s, "-")
	canonical := strconv.FormatInt(id.Batch(), 10) == b
	for _, c := range []byte(slot) {
		canonical = canonical && c >= '0' && c <= '9'
	}
	if !canonical {
		return 0, fmt.Errorf("card number %q is not canonical (want %s)", s, id)
	}
	return id, nil
}
