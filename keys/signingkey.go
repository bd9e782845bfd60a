package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// ErrNoEd25519 is returned when a token cannot generate or sign with
// Ed25519 keys (CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA).
var ErrNoEd25519 = errors.New("the token has no Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA)")

// checkObjectLabel accepts a CKA_LABEL for a key pair outside the
// hierarchy: printable ASCII without spaces, at most 128 bytes, and not a
// label of the hierarchy ("NAME" or "NAME/..." for a key NAME of it).
func checkObjectLabel(label string) error {
	if label == "" || len(label) > 128 {
		return fmt.Errorf("keys: a key label is 1 to 128 characters, got %d", len(label))
	}
	for _, c := range []byte(label) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("keys: key label %q: printable ASCII without spaces only", label)
		}
	}
	name, _, _ := strings.Cut(label, "/")
	if _, err := LookupSpec(name); err == nil {
		return fmt.Errorf("keys: key label %q belongs to the key hierarchy: choose another", label)
	}
	return nil
}

// GenerateSigningKey creates an Ed25519 key pair labelled label in the
// token (CKM_EC_EDWARDS_KEY_PAIR_GEN; the private key private, sensitive,
// never extractable and sign only) and returns it as a Signer. The label is
// the caller's, such as a store's key name in the store's own token; it may
// not be a label of the key hierarchy. The creation is audited with the
// label, never key material.
// Errors wrap ErrKeyExists (label taken) or ErrNoEd25519.
func (h *HSM) GenerateSigningKey(ctx context.Context, label string) (s *Signer, err error) {
	defer func() { h.audit("keys.generate-signing-key", err, slog.String("label", label)) }()
	if err := checkObjectLabel(label); err != nil {
		return nil, err
	}
	if !h.eddsa {
		return nil, fmt.Errorf("keys: generate %s: %w", label, ErrNoEd25519)
	}
	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			objs, err := h.findObjects(sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			})
			if err != nil {
				return err
			}
			if len(objs) > 0 {
				return fmt.Errorf("%w: the token already has a key labelled %s", ErrKeyExists, label)
			}
		}
		id := []byte(label + " created=" + time.Now().UTC().Format(time.RFC3339))
		return h.generateEd25519(sh, label, id)
	})
	if err != nil {
		return nil, err
	}
	return h.SigningKey(ctx, label)
}

// SigningKey returns the Ed25519 key pair labelled label (made by
// GenerateSigningKey) as a Signer that signs in the HSM.
// Errors wrap ErrKeyNotFound or ErrNoEd25519.
func (h *HSM) SigningKey(ctx context.Context, label string) (*Signer, error) {
	if err := checkObjectLabel(label); err != nil {
		return nil, err
	}
	s := &Signer{h: h, obj: label}
	err := h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		if _, err := h.objectByLabel(sh, label, pkcs11.CKO_PRIVATE_KEY); err != nil {
			return err
		}
		var err error
		s.pub, s.alg, err = h.publicKey(sh, label)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.alg != AlgEd25519 {
		return nil, fmt.Errorf("keys: %s is an %s key: %w", label, s.alg, ErrNoEd25519)
	}
	return s, nil
}
