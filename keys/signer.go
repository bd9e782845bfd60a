package keys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ThalesIgnite/crypto11"
	"github.com/miekg/pkcs11"
)

// Signing algorithms of hq-sign, as KeyInfo.Type and Signer.Algorithm name them.
const (
	AlgEd25519   = "Ed25519"
	AlgECDSAP256 = "ECDSA P-256"
)

// generateECDSA creates hq-sign version l as an ECDSA P-256 pair through
// crypto11, for tokens without Ed25519.
func (h *HSM) generateECDSA(l Label, now time.Time) error {
	pub, err := crypto11.NewAttributeSetWithIDAndLabel(objectID(l, now), []byte(l.String()))
	if err != nil {
		return fmt.Errorf("keys: generate %s: %w", l, err)
	}
	priv := pub.Copy()
	priv.AddIfNotPresent(privateKeyAttrs(pkcs11.CKK_EC))
	pub.AddIfNotPresent(publicKeyAttrs())
	priv.Unset(crypto11.CkaClass) // crypto11 sets the class itself
	if _, err := h.c11.GenerateECDSAKeyPairWithAttributes(pub, priv, elliptic.P256()); err != nil {
		return fmt.Errorf("keys: generate %s: %s", l, err)
	}
	return nil
}

// publicKey returns the public key of the key pair labelled l and its
// algorithm.
func (h *HSM) publicKey(sh pkcs11.SessionHandle, l string) (crypto.PublicKey, string, error) {
	oh, err := h.objectByLabel(sh, l, pkcs11.CKO_PUBLIC_KEY)
	if err != nil {
		return nil, "", err
	}
	attrs, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, "", fmt.Errorf("keys: read public key of %s: %w", l, err)
	}
	if bytesToUint(attrs[0].Value) == pkcs11.CKK_EC {
		s, err := h.c11.FindKeyPair(nil, []byte(l))
		if err != nil || s == nil {
			return nil, "", fmt.Errorf("keys: find ECDSA key pair %s: %v", l, err)
		}
		return s.Public(), AlgECDSAP256, nil
	}
	p := attrs[1].Value
	// CKA_EC_POINT is a DER OCTET STRING; some modules give the raw point.
	if len(p) == 2+ed25519.PublicKeySize && p[0] == 0x04 && p[1] == ed25519.PublicKeySize {
		p = p[2:]
	}
	if len(p) != ed25519.PublicKeySize {
		return nil, "", fmt.Errorf("keys: public key of %s is %d bytes, not an Ed25519 key", l, len(p))
	}
	return ed25519.PublicKey(append([]byte(nil), p...)), AlgEd25519, nil
}

// Signer is a key pair in the HSM as a crypto.Signer: a version of hq-sign
// (HSM.Signer) or a key pair under a label of the caller's choice, such as
// a store's key in the store's own token (HSM.GenerateSigningKey,
// HSM.SigningKey). An Ed25519 key signs in the HSM with CKM_EDDSA and takes
// the whole message with crypto.Hash(0), as ed25519.PrivateKey does; an
// ECDSA P-256 key (tokens without Ed25519) is crypto11's signer and takes a
// SHA-256 digest.
type Signer struct {
	h     *HSM
	label Label  // hierarchy version; zero for a caller-labelled key
	obj   string // CKA_LABEL of both halves
	alg   string
	pub   crypto.PublicKey
	ec    crypto11.Signer // ECDSA only
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
	err = h.withKey(ctx, func(sh pkcs11.SessionHandle) error {
		if s.label, err = h.resolve(sh, l); err != nil {
			return err
		}
		s.obj = s.label.String()
		if _, err = h.object(sh, s.label, pkcs11.CKO_PRIVATE_KEY); err != nil {
			return err
		}
		s.pub, s.alg, err = h.publicKey(sh, s.obj)
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.alg == AlgECDSAP256 {
		if s.ec, err = h.c11.FindKeyPair(nil, []byte(s.label.String())); err != nil || s.ec == nil {
			return nil, fmt.Errorf("keys: find ECDSA key pair %s: %v", s.label, err)
		}
	}
	return s, nil
}

// Label is the hq-sign version this signer uses; it is the zero Label for a
// key opened by SigningKey or GenerateSigningKey.
func (s *Signer) Label() Label { return s.label }

// ObjectLabel is the CKA_LABEL of the key pair in the token.
func (s *Signer) ObjectLabel() string { return s.obj }

// Algorithm is AlgEd25519 or AlgECDSAP256.
func (s *Signer) Algorithm() string { return s.alg }

// Public returns an ed25519.PublicKey or an *ecdsa.PublicKey.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Sign signs in the HSM. For Ed25519, message is the message itself and
// opts must be crypto.Hash(0) (or nil); for ECDSA P-256 it is a SHA-256
// digest and the signature is ASN.1 DER. rand is ignored: the HSM draws.
func (s *Signer) Sign(rand io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.ec != nil {
		if opts == nil || opts.HashFunc() != crypto.SHA256 || len(message) != 32 {
			return nil, errors.New("keys: ECDSA P-256 signs a SHA-256 digest: pass crypto.SHA256")
		}
		sig, err := s.ec.Sign(rand, message, opts)
		if err != nil {
			return nil, fmt.Errorf("keys: sign with %s: %s", s.obj, err)
		}
		return sig, nil
	}
	if opts != nil && opts.HashFunc() != crypto.Hash(0) {
		return nil, errors.New("keys: Ed25519 signs the message itself: pass crypto.Hash(0)")
	}
	var sig []byte
	err := s.h.withKey(context.Background(), func(sh pkcs11.SessionHandle) error {
		oh, err := s.h.objectByLabel(sh, s.obj, pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		sig, err = s.h.sign(sh, ckmEdDSA, oh, message)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: sign with %s: %w", s.obj, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("keys: the HSM returned a %d-byte Ed25519 signature", len(sig))
	}
	return sig, nil
}
