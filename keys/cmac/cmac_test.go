package cmac

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// RFC 4493 section 4: all four examples, covering empty, one full block,
// a partial final block and four full blocks.
func TestRFC4493(t *testing.T) {
	key := unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172a"+
		"ae2d8a571e03ac9c9eb76fac45af8e51"+
		"30c81c46a35ce411e5fbc1191a0a52ef"+
		"f69f2445df4f9b17ad2b417be66c3710")
	c, err := New(key)
	require.NoError(t, err)

	k1, k2 := c.Subkeys()
	require.Equal(t, "fbeed618357133667c85e08f7236a8de", hex.EncodeToString(k1[:]))
	require.Equal(t, "f7ddac306ae266ccf90bc11ee46d513b", hex.EncodeToString(k2[:]))

	for _, tc := range []struct {
		n   int
		mac string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		sum := c.Sum(msg[:tc.n])
		require.Equal(t, tc.mac, hex.EncodeToString(sum[:]), "len %d", tc.n)
		require.True(t, c.Equal(msg[:tc.n], sum[:8]))
		sum[0] ^= 1
		require.False(t, c.Equal(msg[:tc.n], sum[:]))
	}
}

func TestBadKey(t *testing.T) {
	_, err := New(make([]byte, 15))
	require.ErrorIs(t, err, ErrKeySize)
}

func BenchmarkSum32(b *testing.B) {
	c, _ := New(unhex(b, "00112233445566778899aabbccddeeff"))
	msg := make([]byte, 32)
	for b.Loop() {
		c.Sum(msg)
	}
}
