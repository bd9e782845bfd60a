package apitype

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSecretDestroy(t *testing.T) {
	s := newSecret("abc")
	require.Equal(t, []byte("abc"), s.Bytes())
	s.Destroy()
	require.Equal(t, []byte{0, 0, 0}, s.Bytes())
	require.True(t, Secret{}.IsZero())
}
