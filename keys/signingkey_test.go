package keys

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/softhsm"
)

// TestSigningKey generates a store's key in a second token: the store's own,
// next to HQ's token with the hierarchy.
func TestSigningKey(t *testing.T) {
	ctx := context.Background()
	hqURI := softhsm.NewTestToken(t) // both tokens before any Open
	storeURI := softhsm.NewTestToken(t)
	hq, err := Open(hqURI, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, hq.Close()) })
	store, err := Open(storeURI, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	_, err = hq.Init(ctx)
	require.NoError(t, err)

	const label = "loopcard-org1-store-bar"
	_, err = store.SigningKey(ctx, label)
	require.ErrorIs(t, err, ErrKeyNotFound)
	s, err := store.GenerateSigningKey(ctx, label)
	require.NoError(t, err)
	require.Equal(t, AlgEd25519, s.Algorithm())
	require.Equal(t, label, s.ObjectLabel())
	require.Equal(t, Label{}, s.Label())
	var signer crypto.Signer = s
	msg := []byte("loopcard handover entry v1\n{}")
	sig, err := signer.Sign(nil, msg, crypto.Hash(0))
	require.NoError(t, err)
	pub := signer.Public().(ed25519.PublicKey)
	require.True(t, ed25519.Verify(pub, msg, sig))
	_, err = signer.Sign(nil, msg, crypto.SHA256)
	require.Error(t, err, "Ed25519 signs the message, not a digest")

	_, err = store.GenerateSigningKey(ctx, label)
	require.ErrorIs(t, err, ErrKeyExists, "a label is never replaced")
	again, err := store.SigningKey(ctx, label)
	require.NoError(t, err)
	require.Equal(t, pub, again.Public(), "the key that was there is kept")
	_, err = hq.SigningKey(ctx, label)
	require.ErrorIs(t, err, ErrKeyNotFound, "the key lives in the store's token only")

	// The store's key is not part of the hierarchy and not extractable.
	infos, err := store.List(ctx)
	require.NoError(t, err)
	require.Empty(t, infos)
	require.NoError(t, store.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		oh, err := store.objectByLabel(sh, label, pkcs11.CKO_PRIVATE_KEY)
		require.NoError(t, err)
		_, err = store.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		require.ErrorIs(t, err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE))
		attrs, err := store.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_NEVER_EXTRACTABLE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, nil),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, nil),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, nil),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		})
		require.NoError(t, err)
		require.False(t, isTrue(attrs[0].Value), "extractable")
		require.True(t, isTrue(attrs[1].Value), "never extractable")
		require.True(t, isTrue(attrs[2].Value), "sign")
		for _, a := range attrs[3:6] {
			require.False(t, isTrue(a.Value), "usage %#x", a.Type)
		}
		require.Equal(t, uint(ckkECEdwards), bytesToUint(attrs[6].Value))
		return nil
	}))

	for _, bad := range []string{"", "hq-sign", "hq-sign/v9", "pin/v1", "has space", "tab\there", string(make([]byte, 129))} {
		_, err := store.GenerateSigningKey(ctx, bad)
		require.Error(t, err, "%q", bad)
		require.NotErrorIs(t, err, ErrKeyExists)
	}
	infos, err = store.List(ctx)
	require.NoError(t, err)
	require.Empty(t, infos, "refused labels created nothing")
}

func TestSigningKeyNeedsEd25519(t *testing.T) {
	h := openTest(t)
	h.eddsa = false // as on a token without CKM_EDDSA
	_, err := h.GenerateSigningKey(context.Background(), "loopcard-org1-store-x")
	require.ErrorIs(t, err, ErrNoEd25519)
}
