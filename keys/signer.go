package keys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	"github.com/miekg/pkcs11"
)

// publicKey returns the raw 32-byte Ed25519 public key of key pair l.
func (h *HSM) publicKey(sh pkcs11.SessionHandle, l Label) (ed25519.PublicKey, error) {
	oh, err := h.object(sh, l, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, err
	}
	attrs, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("keys: read public key of %s: %w", l, err)
	}
	p := attrs[0].Value
	// CKA_EC_POINT is a DER OCTET STRING; some modules give the raw point.
	if len(p) == 2+ed25519.PublicKeySize && p[0] == 0x04 && p[1] == ed25519.PublicKeySize {
		p = p[2:]
	}
	if len(p) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("keys: public key of %s is %d bytes, not an Ed25519 key", l, len(p))
	}
	return ed25519.PublicKey(append([]byte(nil), p...)), nil
}

// Signer is hq-sign as a crypto.Signer: Ed25519 computed in the HSM with
// CKM_EDDSA. Sign takes the whole message (crypto.Hash(0)), as
// ed25519.PrivateKey does.
type Signer struct {
	h     *HSM
	label Label
	pub   ed25519.PublicKey
}

var _ crypto.Signer = (*Signer)(nil)

// Signer returns the signing key l of the hierarchy (hq-sign; version 0
// means the newest) as a crypto.Signer.
// Errors wrap ErrUnknownKey or ErrKeyNotFound.
func (h *HSM) Signer(ctx context.Context, l Label) (*Signer, error) {
	spec, err := LookupSpec(l.Name)
	if err != nil {
		return nil, err
	}
	if spec.Kind != KindSigning {
		return nil, fmt.Errorf("keys: %s is not a signing key", l.Name)
	}
	s := &Signer{h: h}
	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		if s.label, err = h.resolve(sh, l); err != nil {
			return err
		}
		if _, err = h.object(sh, s.label, pkcs11.CKO_PRIVATE_KEY); err != nil {
			return err
		}
		s.pub, err = h.publicKey(sh, s.label)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Label is the key version this signer uses.
func (s *Signer) Label() Label { return s.label }

// Public returns the ed25519.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs message with Ed25519 in the HSM. opts must be crypto.Hash(0)
// (pure Ed25519); rand is ignored.
func (s *Signer) Sign(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("keys: Ed25519 signs the message itself: pass crypto.Hash(0)")
	}
	var sig []byte
	err := s.h.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		oh, err := s.h.object(sh, s.label, pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		sig, err = s.h.sign(sh, ckmEdDSA, oh, message)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: sign with %s: %w", s.label, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("keys: the HSM returned a %d-byte Ed25519 signature", len(sig))
	}
	return sig, nil
}
