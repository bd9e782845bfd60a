package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// ErrEnvelope is returned when an envelope cannot be opened: wrong key,
// tampered data, or wrong associated data.
var ErrEnvelope = errors.New("envelope cannot be opened")

// Envelope is data encrypted with AES-256-GCM under a fresh data key, with
// the data key wrapped (AES key wrap, RFC 3394) by data-kek in the HSM. It
// names the data-kek version, so rotating data-kek leaves old envelopes
// readable.
type Envelope struct {
	KEK        string `json:"kek"`         // "data-kek/vN"
	WrappedKey []byte `json:"wrapped_key"` // 40 bytes
	Nonce      []byte `json:"nonce"`       // 12 bytes
	Ciphertext []byte `json:"ciphertext"`  // GCM ciphertext and tag
}

// envelopeAAD binds the KEK label and the wrapped key to the ciphertext,
// before the caller's associated data.
func envelopeAAD(kek string, wrapped, aad []byte) []byte {
	b := []byte("loopcard-envelope-1")
	b = binary.BigEndian.AppendUint16(b, uint16(len(kek)))
	b = append(b, kek...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(wrapped)))
	b = append(b, wrapped...)
	return append(b, aad...)
}

// dataKeyTemplate is a session (not token) AES-256 key that may be wrapped
// and read: the data key lives in the HSM only for the wrap or unwrap. It
// cannot be modified; Seal also makes it non-copyable, which SoftHSM2
// refuses in an unwrap template (CKR_ATTRIBUTE_READ_ONLY).
func dataKeyTemplate() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}
}

// Seal encrypts plaintext with a fresh AES-256-GCM data key drawn from the
// HSM's generator and wraps the data key with the newest data-kek. aad is
// authenticated, not encrypted, and must be given again to Unseal.
func (h *HSM) Seal(ctx context.Context, plaintext, aad []byte) (*Envelope, error) {
	var env Envelope
	var dk *secretBytes
	err := h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		used, kek, err := h.secretKey(sh, Label{Name: DataKEK}, KindKEK)
		if err != nil {
			return err
		}
		env.KEK = used.String()
		raw, err := h.p.GenerateRandom(sh, 32)
		if err != nil {
			return fmt.Errorf("keys: HSM random: %w", err)
		}
		dk = newSecretBytes(raw)
		clear(raw)
		value := append([]byte(nil), dk.bytes()...)
		obj, err := h.p.CreateObject(sh, append(dataKeyTemplate(), pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, false), pkcs11.NewAttribute(pkcs11.CKA_VALUE, value)))
		clear(value)
		if err != nil {
			return fmt.Errorf("keys: load data key: %w", err)
		}
		defer h.p.DestroyObject(sh, obj)
		env.WrappedKey, err = h.p.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, kek, obj)
		if err != nil {
			return fmt.Errorf("keys: wrap data key with %s: %w", used, err)
		}
		env.Nonce, err = h.p.GenerateRandom(sh, 12)
		if err != nil {
			return fmt.Errorf("keys: HSM random: %w", err)
		}
		return nil
	})
	if err != nil {
		dk.destroy()
		return nil, err
	}
	defer dk.destroy()
	gcm, err := newGCM(dk.bytes())
	if err != nil {
		return nil, err
	}
	env.Ciphertext = gcm.Seal(nil, env.Nonce, plaintext, envelopeAAD(env.KEK, env.WrappedKey, aad))
	return &env, nil
}

// Unseal unwraps the data key of env with the data-kek version it names and
// decrypts. Errors wrap ErrEnvelope or ErrKeyNotFound.
func (h *HSM) Unseal(ctx context.Context, env *Envelope, aad []byte) ([]byte, error) {
	l, err := ParseLabel(env.KEK)
	if err != nil || l.Name != DataKEK || l.Version == 0 {
		return nil, fmt.Errorf("%w: it names no data-kek version", ErrEnvelope)
	}
	if len(env.Nonce) != 12 {
		return nil, fmt.Errorf("%w: bad nonce", ErrEnvelope)
	}
	var dk *secretBytes
	err = h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		_, kek, err := h.secretKey(sh, l, KindKEK)
		if err != nil {
			return err
		}
		obj, err := h.p.UnwrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}, kek, env.WrappedKey, dataKeyTemplate())
		if err != nil {
			return fmt.Errorf("%w: unwrap with %s: %w", ErrEnvelope, l, err)
		}
		defer h.p.DestroyObject(sh, obj)
		attrs, err := h.p.GetAttributeValue(sh, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return fmt.Errorf("keys: read data key: %w", err)
		}
		dk = newSecretBytes(attrs[0].Value)
		clear(attrs[0].Value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer dk.destroy()
	gcm, err := newGCM(dk.bytes())
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, env.Nonce, env.Ciphertext, envelopeAAD(env.KEK, env.WrappedKey, aad))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrEnvelope)
	}
	return pt, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: data key is %d bytes", ErrEnvelope, len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return cipher.NewGCM(b)
}
