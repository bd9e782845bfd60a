package softhsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"
)

// tokenLabels lists the labels of initialised tokens the module sees with
// the current SOFTHSM2_CONF, initialising and finalising it.
func tokenLabels(t *testing.T) []string {
	t.Helper()
	module, err := ModulePath()
	require.NoError(t, err)
	p := pkcs11.New(module)
	require.NotNil(t, p)
	defer p.Destroy()
	require.NoError(t, p.Initialize())
	defer func() { require.NoError(t, p.Finalize()) }()
	slots, err := p.GetSlotList(true)
	require.NoError(t, err)
	var labels []string
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		require.NoError(t, err)
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			labels = append(labels, strings.TrimRight(ti.Label, " "))
		}
	}
	return labels
}

func TestNewTestToken(t *testing.T) {
	var dir string
	t.Run("create", func(t *testing.T) {
		uri1 := NewTestToken(t)
		uri2 := NewTestToken(t)
		require.NotEqual(t, uri1, uri2)
		for _, uri := range []string{uri1, uri2} {
			require.True(t, strings.HasPrefix(uri, "pkcs11:token=test-"), uri)
			require.Contains(t, uri, "module-path=/")
			require.Contains(t, uri, "pin-source=file:///")
		}
		conf := os.Getenv(ConfEnv)
		require.FileExists(t, conf)
		dir = filepath.Dir(conf)
		labels := tokenLabels(t)
		require.Len(t, labels, 2)
		for _, uri := range []string{uri1, uri2} {
			label := strings.TrimPrefix(strings.Split(uri, "?")[0], "pkcs11:token=")
			require.Contains(t, labels, label)
		}
	})
	// The last token's cleanup removed the whole per-process directory.
	require.NoDirExists(t, dir)

	t.Run("again", func(t *testing.T) {
		uri := NewTestToken(t)
		require.Len(t, tokenLabels(t), 1)
		require.Contains(t, uri, "token=test-")
	})
}

func TestEmbedded(t *testing.T) {
	t.Setenv(ConfEnv, "") // restored after the test
	data := t.TempDir()

	uri, created, err := Embedded(data)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, filepath.Join(data, "softhsm", "softhsm2.conf"), os.Getenv(ConfEnv))
	pinFile := filepath.Join(data, "softhsm", "pin")
	require.Equal(t, URI(EmbeddedLabel, mustModule(t), pinFile), uri)
	st, err := os.Stat(pinFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	pin, err := os.ReadFile(pinFile)
	require.NoError(t, err)
	require.Len(t, pin, 32)
	require.Equal(t, []string{EmbeddedLabel}, tokenLabels(t))

	// Second use: same token, same PIN, not created again.
	uri2, created, err := Embedded(data)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, uri, uri2)
	pin2, err := os.ReadFile(pinFile)
	require.NoError(t, err)
	require.Equal(t, pin, pin2)
	require.Equal(t, []string{EmbeddedLabel}, tokenLabels(t))

	// A moved data directory keeps working: the configuration follows it.
	moved := filepath.Join(t.TempDir(), "moved")
	require.NoError(t, os.Rename(data, moved))
	data = moved
	pinFile = filepath.Join(data, "softhsm", "pin")
	_, created, err = Embedded(data)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, []string{EmbeddedLabel}, tokenLabels(t))

	// A token without its PIN file is reported, not replaced.
	require.NoError(t, os.Remove(pinFile))
	_, _, err = Embedded(data)
	require.ErrorContains(t, err, "has no PIN file")
}

func mustModule(t *testing.T) string {
	m, err := ModulePath()
	require.NoError(t, err)
	return m
}

func TestURIEscapes(t *testing.T) {
	for _, tc := range []struct{ token, module, pin, want string }{
		{"loopcard", "/usr/lib/x.so", "/tmp/pin", "pkcs11:token=loopcard?module-path=/usr/lib/x.so&pin-source=file:///tmp/pin"},
		{"a b;c", "/m.so", "/p q/pin", "pkcs11:token=a%20b%3Bc?module-path=/m.so&pin-source=file:///p%2520q/pin"},
	} {
		require.Equal(t, tc.want, URI(tc.token, tc.module, tc.pin))
	}
}
