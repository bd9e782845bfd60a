package qrpin

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToken(t *testing.T) {
	raw, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	tok, err := NewToken(raw)
	require.NoError(t, err)
	raw[0] = 0xFF // NewToken copies
	sum := sha256.Sum256(mustHex("00112233445566778899aabbccddeeff"))
	require.Equal(t, sum[:], tok.Hash())

	u := tok.URL(DefaultPublicURL)
	require.Equal(t, "https://localhost:8443/c/ABEiM0RVZneImaq7zN3u_w", u)
	back, err := ParseURL(DefaultPublicURL, u)
	require.NoError(t, err)
	require.True(t, tok.Equal(back))

	for _, bad := range []string{"https://other/c/ABEiM0RVZneImaq7zN3u_w", DefaultPublicURL + "short", DefaultPublicURL + "ABEiM0RVZneImaq7zN3u_w=="} {
		_, err := ParseURL(DefaultPublicURL, bad)
		require.ErrorIs(t, err, ErrURL, bad)
	}
	_, err = NewToken(raw[:15])
	require.ErrorIs(t, err, ErrRandom)

	// Formatting never shows the bytes.
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", tok, tok, tok)} {
		require.NotContains(t, strings.ToLower(s), "00112233")
		require.NotContains(t, s, "ABEiM0RV")
	}
}

func TestCheckPublicURL(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{DefaultPublicURL, true},
		{"https://pay.example.com/c/", true},
		{"http://127.0.0.1:8080/", true},
		{"https://pay.example.com/c", false},
		{"ftp://x/c/", false},
		{"/c/", false},
		{"https://x/c/?a=b", false},
	}
	for _, tt := range tests {
		err := CheckPublicURL(tt.in)
		if tt.ok {
			require.NoError(t, err, tt.in)
		} else {
			require.ErrorIs(t, err, ErrURL, tt.in)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
