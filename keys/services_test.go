package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/loopcard/loopcard/softhsm"
	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"
)

func TestSigner(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Signer(ctx, Label{Name: HQSign})
	require.ErrorIs(t, err, ErrKeyNotFound)
	_, err = h.Init(ctx)
	require.NoError(t, err)

	s1, err := h.Signer(ctx, Label{Name: HQSign})
	require.NoError(t, err)
	require.Equal(t, Label{HQSign, 1}, s1.Label())
	require.Equal(t, AlgEd25519, s1.Algorithm(), "SoftHSM2 has Ed25519: it is the default")
	var signer crypto.Signer = s1
	msg := []byte("loopcard checkpoint\n42\nroot\n")
	sig, err := signer.Sign(rand.Reader, msg, crypto.Hash(0))
	require.NoError(t, err)
	pub := signer.Public().(ed25519.PublicKey)
	require.True(t, ed25519.Verify(pub, msg, sig))
	require.False(t, ed25519.Verify(pub, append(msg, 'x'), sig))
	_, err = signer.Sign(rand.Reader, msg, crypto.SHA256)
	require.Error(t, err)

	_, err = h.Rotate(ctx, HQSign)
	require.NoError(t, err)
	s2, err := h.Signer(ctx, Label{Name: HQSign})
	require.NoError(t, err)
	require.Equal(t, Label{HQSign, 2}, s2.Label())
	require.NotEqual(t, pub, s2.Public())
	sig, err = s1.Sign(nil, msg, nil)
	require.NoError(t, err, "old versions stay usable")
	require.True(t, ed25519.Verify(pub, msg, sig))

	_, err = h.Signer(ctx, Label{Name: AppDebit})
	require.Error(t, err)
}

func TestPINVerification(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Init(ctx)
	require.NoError(t, err)

	pin, err := h.NewPIN(ctx)
	require.NoError(t, err)
	require.Regexp(t, `^[0-9]{6}$`, pin.Reveal())
	card := []byte("card-000123")
	pvv, err := h.PINVerificationValue(ctx, card, pin)
	require.NoError(t, err)
	require.Equal(t, 1, pvv.KeyVersion)
	require.Len(t, pvv.MAC, 32)
	require.NoError(t, h.VerifyPIN(ctx, card, pin, pvv))

	other, err := ParsePIN("000000")
	require.NoError(t, err)
	if other.Reveal() == pin.Reveal() {
		other, _ = ParsePIN("000001")
	}
	require.ErrorIs(t, h.VerifyPIN(ctx, card, other, pvv), ErrPINMismatch)
	require.ErrorIs(t, h.VerifyPIN(ctx, []byte("card-000124"), pin, pvv), ErrPINMismatch)

	// Same PIN, two cards: different values (the card id is in the MAC).
	pvv2, err := h.PINVerificationValue(ctx, []byte("card-000124"), pin)
	require.NoError(t, err)
	require.NotEqual(t, pvv.MAC, pvv2.MAC)

	// After rotation new values use v2 and old ones still verify.
	_, err = h.Rotate(ctx, PINKey)
	require.NoError(t, err)
	pvv3, err := h.PINVerificationValue(ctx, card, pin)
	require.NoError(t, err)
	require.Equal(t, 2, pvv3.KeyVersion)
	require.NotEqual(t, pvv.MAC, pvv3.MAC)
	require.NoError(t, h.VerifyPIN(ctx, card, pin, pvv))
	require.NoError(t, h.VerifyPIN(ctx, card, pin, pvv3))

	for _, bad := range []string{"12345", "1234567", "12a456", "      "} {
		_, err := ParsePIN(bad)
		require.ErrorIs(t, err, ErrBadPIN)
		require.NotContains(t, err.Error(), bad)
	}

	// The PIN draws cover every digit.
	seen := map[rune]bool{}
	for i := 0; i < 20; i++ {
		p, err := h.NewPIN(ctx)
		require.NoError(t, err)
		for _, c := range p.Reveal() {
			seen[c] = true
		}
	}
	require.Len(t, seen, 10)
}

func TestEnvelope(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Seal(ctx, []byte("x"), nil)
	require.ErrorIs(t, err, ErrKeyNotFound)
	_, err = h.Init(ctx)
	require.NoError(t, err)

	msg := []byte("Ada Lovelace, ada@example.org, IBAN DE89370400440532013000")
	aad := []byte("profile:42")
	env, err := h.Seal(ctx, msg, aad)
	require.NoError(t, err)
	require.Equal(t, "data-kek/v1", env.KEK)
	require.Len(t, env.WrappedKey, 40)
	require.NotContains(t, string(env.Ciphertext), "Lovelace")
	got, err := h.Unseal(ctx, env, aad)
	require.NoError(t, err)
	require.Equal(t, msg, got)

	env2, err := h.Seal(ctx, msg, aad)
	require.NoError(t, err)
	require.NotEqual(t, env.WrappedKey, env2.WrappedKey, "a fresh data key each time")

	tamper := func(f func(e *Envelope)) *Envelope {
		c := *env
		c.WrappedKey = append([]byte(nil), env.WrappedKey...)
		c.Ciphertext = append([]byte(nil), env.Ciphertext...)
		f(&c)
		return &c
	}
	for name, e := range map[string]*Envelope{
		"ciphertext": tamper(func(e *Envelope) { e.Ciphertext[0] ^= 1 }),
		"wrapped":    tamper(func(e *Envelope) { e.WrappedKey[5] ^= 1 }),
		"nonce":      tamper(func(e *Envelope) { e.Nonce = make([]byte, 12) }),
		"kek":        tamper(func(e *Envelope) { e.KEK = "app-debit/v1" }),
	} {
		_, err := h.Unseal(ctx, e, aad)
		require.ErrorIs(t, err, ErrEnvelope, name)
	}
	_, err = h.Unseal(ctx, env, []byte("profile:43"))
	require.ErrorIs(t, err, ErrEnvelope)

	_, err = h.Rotate(ctx, DataKEK)
	require.NoError(t, err)
	env3, err := h.Seal(ctx, msg, nil)
	require.NoError(t, err)
	require.Equal(t, "data-kek/v2", env3.KEK)
	got, err = h.Unseal(ctx, env, aad)
	require.NoError(t, err, "envelopes of data-kek/v1 stay readable")
	require.Equal(t, msg, got)
	got, err = h.Unseal(ctx, env3, nil)
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

// Tokens without Ed25519 (forced here) get an ECDSA P-256 hq-sign through
// crypto11, with the same non-extractable attributes.
func TestSignerECDSA(t *testing.T) {
	uri := softhsm.NewTestToken(t)
	h, err := Open(uri, Options{ECDSA: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	ctx := context.Background()
	_, err = h.Init(ctx)
	require.NoError(t, err)

	list, err := h.List(ctx)
	require.NoError(t, err)
	var info KeyInfo
	for _, k := range list {
		if k.Name == HQSign {
			info = k
		}
	}
	require.Equal(t, AlgECDSAP256, info.Type)
	require.Equal(t, []string{"sign"}, info.Usages)
	require.True(t, info.Sensitive)
	require.False(t, info.Extractable)
	require.Regexp(t, `^[0-9A-F]{6}$`, info.KCV)

	s, err := h.Signer(ctx, Label{Name: HQSign})
	require.NoError(t, err)
	require.Equal(t, AlgECDSAP256, s.Algorithm())
	digest := sha256.Sum256([]byte("checkpoint"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	require.NoError(t, err)
	pub := s.Public().(*ecdsa.PublicKey)
	require.True(t, ecdsa.VerifyASN1(pub, digest[:], sig))
	digest[0] ^= 1
	require.False(t, ecdsa.VerifyASN1(pub, digest[:], sig))
	_, err = s.Sign(rand.Reader, []byte("message"), crypto.Hash(0))
	require.Error(t, err)

	require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		oh, err := h.object(sh, Label{HQSign, 1}, pkcs11.CKO_PRIVATE_KEY)
		require.NoError(t, err)
		_, err = h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE))
		return nil
	}))
}
