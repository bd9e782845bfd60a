package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	testvectors "github.com/loopcard/loopcard/keys/vectors"
	"strings"
	"testing"

	"github.com/loopcard/loopcard/softhsm"
	"github.com/stretchr/testify/require"
)

// openTest opens a fresh SoftHSM2 token for t, closed when t ends.
func openTest(t testing.TB) *HSM {
	t.Helper()
	uri := softhsm.NewTestToken(t)
	h, err := Open(uri, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// split returns n random components whose XOR is key.
func split(t testing.TB, key []byte, n int) []Component {
	t.Helper()
	last := append([]byte(nil), key...)
	var cs []Component
	for i := 0; i < n-1; i++ {
		r := make([]byte, len(key))
		_, err := rand.Read(r)
		require.NoError(t, err)
		for j := range last {
			last[j] ^= r[j]
		}
		c, err := ParseComponent([]byte(hex.EncodeToString(r)))
		require.NoError(t, err)
		cs = append(cs, c)
	}
	c, err := ParseComponent([]byte(strings.ToUpper(hex.EncodeToString(last))))
	require.NoError(t, err)
	return append(cs, c)
}

// importKnown imports key as the next version of name and returns the label.
func importKnown(t testing.TB, h *HSM, name string, key []byte) Label {
	t.Helper()
	res, err := h.Import(context.Background(), name, split(t, key, 3))
	require.NoError(t, err)
	return res.Label
}

type vectors struct {
	AESCMAC []struct {
		Key, Message, MAC string
	} `json:"aes_cmac"`
	AN10922 []struct {
		MasterKey        string `json:"master_key"`
		UID, AID         string
		SystemIdentifier string `json:"system_identifier"`
		K1, K2           string
		PaddedInputD     string `json:"padded_input_D"`
		DiversifiedKey   string `json:"diversified_key"`
	} `json:"an10922_aes128"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	var v vectors
	require.NoError(t, json.NewDecoder(bytes.NewReader(testvectors.DESFireJSON)).Decode(&v))
	require.NotEmpty(t, v.AESCMAC)
	require.NotEmpty(t, v.AN10922)
	return v
}
