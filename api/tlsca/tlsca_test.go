package tlsca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca, created, err := Ensure(dir, []string{"pay.example"})
	require.NoError(t, err)
	require.True(t, created)
	for name, mode := range map[string]os.FileMode{CAKeyFile: 0o600, ServerKeyFile: 0o600, CAFile: 0o644, ServerFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.Equal(t, mode, st.Mode().Perm(), name)
	}
	sc, err := ca.ServerCertificate()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(sc.Certificate[0])
	require.NoError(t, err)
	for _, host := range []string{"localhost", "127.0.0.1", "pay.example"} {
		_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host})
		require.NoError(t, err, host)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "other.example"})
	require.Error(t, err)

	// A second run loads what is there.
	ca2, created, err := Ensure(dir, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.True(t, ca.Cert.Equal(ca2.Cert))

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cc, err := ca.ClientCertificate("1:bar-1", pub, time.Hour)
	require.NoError(t, err)
	_, err = cc.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	require.NoError(t, err)
	require.Equal(t, "1:bar-1", cc.Subject.CommonName)
}
