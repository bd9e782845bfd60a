package desfire

import (
	"crypto/aes"
	"encoding/hex"
	"encoding/json"
	testvectors "github.com/loopcard/loopcard/keys/vectors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys/cmac"
)

// hexBytes decodes hex in JSON strings.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(strings.ToLower(s))
	*h = d
	return err
}

type exchangeStep struct {
	Command  hexBytes `json:"command"`
	Response hexBytes `json:"response"`
}

type vectorFile struct {
	AESCMAC []struct {
		Key, Message, MAC hexBytes
	} `json:"aes_cmac"`
	EV2SessionKeys []struct {
		Source string   `json:"source"`
		Key    hexBytes `json:"key"`
		RndA   hexBytes `json:"rnd_a"`
		RndB   hexBytes `json:"rnd_b"`
		Enc    hexBytes `json:"ses_auth_enc_key"`
		MAC    hexBytes `json:"ses_auth_mac_key"`
	} `json:"ev2_session_keys"`
	AuthEV2First []struct {
		Source   string         `json:"source"`
		Key      hexBytes       `json:"key"`
		KeyNo    hexBytes       `json:"key_no"`
		RndA     hexBytes       `json:"rnd_a"`
		RndB     hexBytes       `json:"rnd_b"`
		Exchange []exchangeStep `json:"exchange"`
		TI       hexBytes       `json:"ti"`
		PDCap2   hexBytes       `json:"pd_cap2"`
		PCDCap2  hexBytes       `json:"pcd_cap2"`
		Enc      hexBytes       `json:"ses_auth_enc_key"`
		MAC      hexBytes       `json:"ses_auth_mac_key"`
	} `json:"authenticate_ev2_first"`
	CRC32 []struct {
		Input hexBytes `json:"input"`
		CRC   hexBytes `json:"crc"`
	} `json:"crc32_desfire"`
}

// loadVectors parses the published vectors embedded in keys/vectors.
func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	var v vectorFile
	require.NoError(t, json.Unmarshal(testvectors.DESFireJSON, &v))
	require.NotEmpty(t, v.AESCMAC)
	require.Len(t, v.EV2SessionKeys, 2)
	require.NotEmpty(t, v.AuthEV2First)
	require.NotEmpty(t, v.CRC32)
	return v
}

func TestVectorAESCMAC(t *testing.T) {
	for _, tc := range loadVectors(t).AESCMAC {
		got, err := cmac.Sum(tc.Key, tc.Message)
		require.NoError(t, err)
		require.Equal(t, []byte(tc.MAC), got[:])
		// The running-IV CMAC of EV1 must equal plain CMAC from a zero IV.
		b, err := aes.NewCipher(tc.Key)
		require.NoError(t, err)
		require.Equal(t, []byte(tc.MAC), newIVMAC(b).sum(make([]byte, 16), tc.Message))
	}
}

func TestVectorEV2SessionKeys(t *testing.T) {
	v := loadVectors(t)
	for _, tc := range v.EV2SessionKeys {
		t.Run(tc.Source, func(t *testing.T) {
			enc, mac, err := EV2SessionKeys(tc.Key, tc.RndA, tc.RndB)
			require.NoError(t, err)
			require.Equal(t, []byte(tc.Enc), enc)
			require.Equal(t, []byte(tc.MAC), mac)
		})
	}
	for _, tc := range v.AuthEV2First {
		enc, mac, err := EV2SessionKeys(tc.Key, tc.RndA, tc.RndB)
		require.NoError(t, err)
		require.Equal(t, []byte(tc.Enc), enc)
		require.Equal(t, []byte(tc.MAC), mac)
	}
}

func TestVectorCRC32(t *testing.T) {
	for _, tc := range loadVectors(t).CRC32 {
		c := CRC32(tc.Input)
		// The vector gives the CRC as it appears on the wire, little-endian.
		require.Equal(t, []byte(tc.CRC), appendCRC32(nil, tc.Input))
		require.Equal(t, uint32(tc.CRC[0])|uint32(tc.CRC[1])<<8|uint32(tc.CRC[2])<<16|uint32(tc.CRC[3])<<24, c)
	}
}

// TestVectorEV2FirstCrypto checks the cryptograms of the AN12196 exchange
// with the primitives alone; client_test replays it through the client.
func TestVectorEV2FirstCrypto(t *testing.T) {
	for _, tc := range loadVectors(t).AuthEV2First {
		b, err := aes.NewCipher(tc.Key)
		require.NoError(t, err)
		zero := make([]byte, 16)
		r1 := tc.Exchange[0].Response
		require.Equal(t, []byte{0x91, 0xAF}, []byte(r1[16:]))
		rndB := cbcDecrypt(b, zero, r1[:16])
		require.Equal(t, []byte(tc.RndB), rndB)
		ct := cbcEncrypt(b, zero, append(append([]byte(nil), tc.RndA...), rotl1(rndB)...))
		want := tc.Exchange[1].Command
		require.Equal(t, []byte(want[5:5+32]), ct)
		r2 := tc.Exchange[1].Response
		pt := cbcDecrypt(b, zero, r2[:32])
		require.Equal(t, []byte(tc.TI), pt[0:4])
		require.Equal(t, rotl1(tc.RndA), pt[4:20])
		require.Equal(t, []byte(tc.PDCap2), pt[20:26])
		require.Equal(t, []byte(tc.PCDCap2), pt[26:32])
	}
}
