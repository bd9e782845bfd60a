package desfire

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// Published vectors beyond shared/vectors: the NIST SP 800-38B TDEA CMAC
// examples (csrc.nist.gov, TDES_CMAC.pdf), and NXP AN12343's EV2 secure
// messaging examples (IVs and truncated MACs, p. 54), as the Proxmark3
// desfire self-tests also use them.

var nistCMACMessage = mustHexS("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E51")

func mustHexS(s string) []byte {
	var h hexBytes
	if err := h.UnmarshalJSON([]byte(`"` + s + `"`)); err != nil {
		panic(err)
	}
	return h
}

func TestPublishedCMAC64(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		macs [4]string // messages of 0, 16, 20, 32 bytes
	}{
		{"2TDEA (NIST)", "0123456789ABCDEF23456789ABCDEF01", [4]string{"79CE52A7F786A960", "CC18A0B79AF2413B", "C06D377ECD101969", "9CD33580F9B64DFB"}},
		{"3TDEA (NIST)", "0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123", [4]string{"7DB0D37DF936C550", "30239CF1F52E6609", "6C9F3EE4923F6BE2", "99429BD0BF7904E5"}},
		{"DES", "0123456789ABCDEF", [4]string{"86F79C13FD306E67", "BEA4212292462A85", "3E2F8310C569275E", "9D1FC4D4C0259132"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := newDESBlock(mustHexS(tc.key))
			require.NoError(t, err)
			m := newIVMAC(b)
			for i, n := range []int{0, 16, 20, 32} {
				require.Equal(t, mustHexS(tc.macs[i]), m.sum(make([]byte, 8), nistCMACMessage[:n]), "message of %d bytes", n)
			}
		})
	}
}

func TestPublishedEV2CommandIV(t *testing.T) {
	for _, tc := range []struct {
		key, ti string
		ctr     uint16
		iv      string
	}{
		{"66A8CB93269DC9BC2885B7A91B9C697B", "ED56F6E6", 0, "DA0F644A4986275957CF1EC3AF4CCE53"},
		{"445A8626B3338459321232FADF6ADE2B", "11223344", 5, "177494FCC4F1DAB2AFBE8FAE2057A9D2"},
	} {
		s, err := NewEV2Session(mustHexS(tc.key), make([]byte, 16), mustHexS(tc.ti), tc.ctr)
		require.NoError(t, err)
		require.Equal(t, mustHexS(tc.iv), s.iv(0xA5, 0x5A, s.CmdCtr()))
	}
}

// TestPublishedEV2MAC runs AN12343's two MACed exchanges (a write of 25
// bytes, then a read of 48) through WrapCommand and UnwrapResponse.
func TestPublishedEV2MAC(t *testing.T) {
	s, err := NewEV2Session(bytes.Repeat([]byte{0x3C}, 16), mustHexS("9366FA195EB566F5BD2BAD4020B83002"), mustHexS("E2D3AF69"), 0)
	require.NoError(t, err)

	data := bytes.Repeat([]byte{0x22}, 25)
	apdu, err := s.WrapCommand(0x8D, mustHexS("00000000190000"), data, CommMAC)
	require.NoError(t, err)
	want := append(append(append([]byte{0x90, 0x8D, 0, 0, 7 + 25 + 8}, mustHexS("00000000190000")...), data...), mustHexS("68F2C28C575A1628")...)
	require.Equal(t, append(want, 0x00), apdu)
	out, err := s.UnwrapResponse(mustHexS("0820F68898C2A7F19100"), CommMAC)
	require.NoError(t, err)
	require.Empty(t, out)
	require.Equal(t, uint16(1), s.CmdCtr())

	apdu, err = s.WrapCommand(0xAD, mustHexS("00000000300000"), nil, CommMAC)
	require.NoError(t, err)
	require.Equal(t, mustHexS("90AD00000F000000003000000D9BE191D596083400"), apdu)
	file := append(bytes.Repeat([]byte{0x22}, 25), make([]byte, 23)...)
	out, err = s.UnwrapResponse(append(append(file, mustHexS("A49A44222D926666")...), 0x91, 0x00), CommMAC)
	require.NoError(t, err)
	require.Equal(t, file, out)
	require.Equal(t, uint16(2), s.CmdCtr())
}
