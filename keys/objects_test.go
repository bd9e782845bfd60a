package keys

import (
	"context"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/softhsm"
)

// Every key object Loopcard creates is fixed for life and least-privilege
// (issue 17, HSM objects): CKA_MODIFIABLE and CKA_COPYABLE false on every
// object made by Init, Rotate, Import (ceremony) and GenerateSigningKey,
// with Ed25519 and ECDSA P-256; public keys verify only (no encrypt, wrap,
// derive, verify-recover). With the user PIN, switching on CKA_ENCRYPT of a
// base key or copying it with other usages is refused. Before, every key
// was modifiable and the hq-sign public key had encrypt and wrap.
func TestKeyObjectsFixedAndLeastPrivilege(t *testing.T) {
	uriEd, uriEC := softhsm.NewTestToken(t), softhsm.NewTestToken(t)
	for _, tc := range []struct {
		name string
		uri  string
		opts Options
	}{{"ed25519", uriEd, Options{}}, {"ecdsa", uriEC, Options{ECDSA: true}}} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Open(tc.uri, tc.opts)
			require.NoError(t, err)
			defer func() { require.NoError(t, h.Close()) }()
			ctx := context.Background()
			_, err = h.Init(ctx)
			require.NoError(t, err)
			for _, s := range Hierarchy() {
				_, err := h.Rotate(ctx, s.Name)
				require.NoError(t, err, s.Name)
			}
			_, err = h.Import(ctx, AppRead, split(t, unhex(t, "00112233445566778899AABBCCDDEEFF"), 2))
			require.NoError(t, err)
			_, err = h.Import(ctx, DataKEK, split(t, unhex(t, "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"), 2))
			require.NoError(t, err)
			if tc.opts == (Options{}) {
				_, err = h.GenerateSigningKey(ctx, "store-a")
				require.NoError(t, err)
			}

			require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
				objs, err := h.findObjects(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)})
				require.NoError(t, err)
				want := 2*len(Hierarchy()) + 2 + 2 + 2 // two versions each, public halves of hq-sign, imports, store pair
				if tc.opts != (Options{}) {
					want -= 2
				}
				require.Len(t, objs, want)
				for _, oh := range objs {
					a, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
						pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
						pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil),
						pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, nil),
						pkcs11.NewAttribute(pkcs11.CKA_COPYABLE, nil),
					})
					require.NoError(t, err)
					label := string(a[0].Value)
					require.False(t, isTrue(a[2].Value), "%s is modifiable", label)
					require.False(t, isTrue(a[3].Value), "%s is copyable", label)
					if bytesToUint(a[1].Value) == pkcs11.CKO_PUBLIC_KEY {
						u, err := h.p.GetAttributeValue(sh, oh, []*pkcs11.Attribute{
							pkcs11.NewAttribute(pkcs11.CKA_VERIFY, nil),
							pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, nil),
							pkcs11.NewAttribute(pkcs11.CKA_WRAP, nil),
							pkcs11.NewAttribute(pkcs11.CKA_DERIVE, nil),
							pkcs11.NewAttribute(pkcs11.CKA_VERIFY_RECOVER, nil),
						})
						require.NoError(t, err)
						require.True(t, isTrue(u[0].Value), "%s public key cannot verify", label)
						for i, name := range []string{"", "encrypt", "wrap", "derive", "verify-recover"} {
							if i > 0 {
								require.False(t, isTrue(u[i].Value), "%s public key has %s", label, name)
							}
						}
					}
				}

				// The attack: with the user PIN, give a base key CKA_ENCRYPT, or
				// copy it with CKA_ENCRYPT.
				base, err := h.object(sh, Label{AppDebit, 1}, pkcs11.CKO_SECRET_KEY)
				require.NoError(t, err)
				err = h.p.SetAttributeValue(sh, base, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true)})
				require.Error(t, err, "a base key's usages could be changed")
				_, err = h.p.CopyObject(sh, base, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true)})
				require.Error(t, err, "a base key could be copied")
				return nil
			}))

			list, err := h.List(ctx)
			require.NoError(t, err)
			for _, k := range list {
				require.False(t, k.Modifiable, k.Label)
				require.False(t, k.Copyable, k.Label)
				require.Empty(t, k.KCVError, k.Label)
			}
		})
	}
}

// keys list marks a KCV it cannot compute instead of failing, and a
// rotation is not reported failed because of another key (issue 17): here
// an object of the wrong type (a generic secret where the hierarchy has an
// AES key) sits under the label app-read/v2.
func TestListMarksKCVItCannotCompute(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	_, err := h.Init(ctx)
	require.NoError(t, err)
	require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		_, err := h.p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)},
			[]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, "app-read/v2"),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 16),
				pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			})
		return err
	}))
	h.forget()

	list, err := h.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, len(Hierarchy())+1)
	for _, k := range list {
		if k.Label == "app-read/v2" {
			require.Empty(t, k.KCV)
			require.Contains(t, k.KCVError, "KCV of app-read/v2")
			continue
		}
		require.Empty(t, k.KCVError, k.Label)
		if k.Name != DataKEK {
			require.Len(t, k.KCV, 6, k.Label)
		}
	}

	l, err := h.Rotate(ctx, AppDebit)
	require.NoError(t, err)
	k, err := h.Describe(ctx, l)
	require.NoError(t, err)
	require.Equal(t, "app-debit/v2", k.Label)
	require.Len(t, k.KCV, 6)
}
