package backup

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStream(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	hdr := []byte("header")
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17} {
		pt := make([]byte, size)
		_, _ = rand.Read(pt)
		var ct bytes.Buffer
		n, err := encrypt(key, bytes.NewReader(pt), &ct, hdr)
		require.NoError(t, err)
		require.Equal(t, int64(size), n)
		var out bytes.Buffer
		require.NoError(t, decrypt(key, bytes.NewReader(ct.Bytes()), &out, hdr), "size %d", size)
		require.True(t, bytes.Equal(pt, out.Bytes()), "size %d", size)
		require.ErrorIs(t, decrypt(key, bytes.NewReader(ct.Bytes()), &out, []byte("other header")), ErrTampered)
		if size > chunkSize {
			// Drop the first chunk: the counter no longer matches.
			frame := 4 + chunkSize + 16
			require.ErrorIs(t, decrypt(key, bytes.NewReader(ct.Bytes()[frame:]), &out, hdr), ErrTampered)
			// Cut after the first chunk: no last chunk.
			require.ErrorIs(t, decrypt(key, bytes.NewReader(ct.Bytes()[:frame]), &out, hdr), ErrTampered)
		}
	}
}
