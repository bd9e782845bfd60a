package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys/cmac"
	"github.com/loopcard/loopcard/keys/keyderiv"
)

// Every CMAC and AN10922 vector of shared/vectors/desfire.json (copied to
// testdata), through the HSM and through the pure-Go reference.
func TestVectors(t *testing.T) {
	v := loadVectors(t)
	h := openTest(t)
	ctx := context.Background()

	for _, tc := range v.AESCMAC {
		key := unhex(t, tc.Key)
		l := importKnown(t, h, AppRead, key)
		var mac []byte
		require.NoError(t, h.withSession(ctx, func(sh pkcs11.SessionHandle) error {
			_, oh, err := h.secretKey(sh, l, KindAESBase)
			if err != nil {
				return err
			}
			mac, err = h.sign(sh, pkcs11.CKM_AES_CMAC, oh, unhex(t, tc.Message))
			return err
		}))
		require.Equal(t, tc.MAC, hex.EncodeToString(mac), "HSM CMAC")
		ref, err := cmac.Sum(key, unhex(t, tc.Message))
		require.NoError(t, err)
		require.Equal(t, tc.MAC, hex.EncodeToString(ref[:]), "Go CMAC")
	}

	for _, tc := range v.AN10922 {
		master := unhex(t, tc.MasterKey)
		m, err := keyderiv.DiversificationInput(unhex(t, tc.UID), unhex(t, tc.AID), unhex(t, tc.SystemIdentifier))
		require.NoError(t, err)
		require.Equal(t, strings.ToLower(tc.PaddedInputD[2:2+2*len(m)]), hex.EncodeToString(m))

		c, err := cmac.New(master)
		require.NoError(t, err)
		k1, k2 := c.Subkeys()
		require.Equal(t, tc.K1, strings.ToUpper(hex.EncodeToString(k1[:])))
		require.Equal(t, tc.K2, strings.ToUpper(hex.EncodeToString(k2[:])))

		base, err := keyderiv.NewAESKey(master)
		require.NoError(t, err)
		ref, err := keyderiv.AN10922(base, m)
		require.NoError(t, err)
		require.Equal(t, tc.DiversifiedKey, strings.ToUpper(hex.EncodeToString(ref.Bytes())), "Go AN10922")

		l := importKnown(t, h, PICCMaster, master)
		got, used, err := h.Diversify(ctx, Label{Name: PICCMaster}, m)
		require.NoError(t, err)
		require.Equal(t, l, used)
		require.Equal(t, tc.DiversifiedKey, strings.ToUpper(hex.EncodeToString(got.Bytes())), "HSM AN10922")
		require.True(t, got.Equal(ref))
		require.Equal(t, ref.KCV(), got.KCV())
	}
}

// The HSM and the reference agree on thousands of random keys and inputs
// of every length the HSM accepts.
func TestDiversifyRandom(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	const keysN, perKey = 4, 750
	for k := 0; k < keysN; k++ {
		raw := make([]byte, 16)
		_, err := rand.Read(raw)
		require.NoError(t, err)
		l := importKnown(t, h, AppMaster, raw)
		base, err := keyderiv.NewAESKey(raw)
		require.NoError(t, err)
		for i := 0; i < perKey; i++ {
			n := keyderiv.MinDiversificationInput + i%(keyderiv.MaxDiversificationInput-keyderiv.MinDiversificationInput+1)
			m := make([]byte, n)
			_, err := rand.Read(m)
			require.NoError(t, err)
			got, _, err := h.Diversify(ctx, l, m)
			require.NoError(t, err)
			want, err := keyderiv.AN10922(base, m)
			require.NoError(t, err)
			require.True(t, got.Equal(want), "key %d, M %x", k, m)
		}
	}
}

// Inputs where CKM_AES_CMAC and AN10922 differ are refused by the HSM path;
// the reference computes short inputs per AN10922, which is not plain CMAC.
func TestDiversifyRefusesInexactInputs(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	raw := unhex(t, "00112233445566778899AABBCCDDEEFF")
	l := importKnown(t, h, AppCredit, raw)
	base, err := keyderiv.NewAESKey(raw)
	require.NoError(t, err)

	for _, n := range []int{0, 1, 7, 15, 32, 40} {
		_, _, err := h.Diversify(ctx, l, make([]byte, n))
		require.ErrorIs(t, err, keyderiv.ErrDiversificationInput, "len %d", n)
	}
	for n := 1; n < keyderiv.MinDiversificationInput; n++ {
		m := make([]byte, n)
		_, _ = rand.Read(m)
		an, err := keyderiv.AN10922(base, m)
		require.NoError(t, err)
		plain, err := cmac.Sum(raw, append([]byte{1}, m...))
		require.NoError(t, err)
		require.NotEqual(t, plain[:], an.Bytes(), "len %d", n)
	}
	// 16..31: AN10922 is exactly CMAC over 0x01 || M.
	for n := keyderiv.MinDiversificationInput; n <= keyderiv.MaxDiversificationInput; n++ {
		m := make([]byte, n)
		_, _ = rand.Read(m)
		an, err := keyderiv.AN10922(base, m)
		require.NoError(t, err)
		plain, err := cmac.Sum(raw, append([]byte{1}, m...))
		require.NoError(t, err)
		require.Equal(t, plain[:], an.Bytes(), "len %d", n)
	}
	_, err = keyderiv.AN10922(base, make([]byte, 32))
	require.ErrorIs(t, err, keyderiv.ErrDiversificationInput)

	for _, tc := range []struct {
		uid, aid, sys string
	}{
		{"04782E21801D", "3042F5", "4E585020416275"},      // 6-byte UID
		{"04782E21801D80", "30F5", "4E585020416275"},      // 2-byte AID
		{"04782E21801D80", "3042F5", "4E5850204162"[:10]}, // M of 15 bytes
		{"04782E21801D80", "3042F5", strings.Repeat("AB", 22)},
	} {
		_, err := keyderiv.DiversificationInput(unhex(t, tc.uid), unhex(t, tc.aid), unhex(t, tc.sys))
		require.ErrorIs(t, err, keyderiv.ErrDiversificationInput)
	}
}

// The event debit key binds the organizer (issue 17 M2): the HSM derives
// CMAC(app-debit, EventDebitInput(org, event)), pinned by the vector of
// docs/design.md (checked with Python's cryptography CMAC), and two
// organizers' events of one id get different keys.
func TestEventDebitKey(t *testing.T) {
	h := openTest(t)
	ctx := context.Background()
	raw := unhex(t, "F0E1D2C3B4A5968778695A4B3C2D1E0F")
	l := importKnown(t, h, AppDebit, raw)

	m, err := keyderiv.EventDebitInput(1, "festival-2026")
	require.NoError(t, err)
	require.Equal(t, unhex(t, "6C6F6F70636172642F6576656E742D64656269742F7632"+"00"+"0000000000000001"+"0D"+"666573746976616C2D32303236"), m)

	got, used, err := h.EventDebitKey(ctx, Label{Name: AppDebit}, 1, "festival-2026")
	require.NoError(t, err)
	require.Equal(t, l, used)
	require.Equal(t, unhex(t, "6BAF26DA06B05B9B02C5B14B4283D1E2"), got.Bytes())
	want, err := cmac.Sum(raw, m)
	require.NoError(t, err)
	require.Equal(t, want[:], got.Bytes())
	old, err := cmac.Sum(raw, []byte("eventfestival-2026"))
	require.NoError(t, err)
	require.NotEqual(t, old[:], got.Bytes(), "the organizer-blind derivation is gone")

	org2, _, err := h.EventDebitKey(ctx, l, 2, "festival-2026")
	require.NoError(t, err)
	require.Equal(t, unhex(t, "2C0D10C2A5DA881805AF499E4A226D73"), org2.Bytes())
	require.False(t, org2.Equal(got), "two organizers' events of one id share a key")

	other, _, err := h.EventDebitKey(ctx, l, 1, "festival-2027")
	require.NoError(t, err)
	require.False(t, other.Equal(got))

	for _, tc := range []struct {
		org   int64
		event string
	}{{0, "x"}, {-1, "x"}, {1, ""}, {1, strings.Repeat("e", keyderiv.MaxEventIDLen+1)}} {
		_, _, err = h.EventDebitKey(ctx, l, tc.org, tc.event)
		require.ErrorIs(t, err, keyderiv.ErrEventDebitInput)
	}
	_, _, err = h.EventDebitKey(ctx, Label{Name: AppCredit}, 1, "x")
	require.Error(t, err)
}
