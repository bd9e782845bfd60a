package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/tlsca"
)

// clientWithCert returns a client presenting a certificate of ca for cn.
func (e *env) clientWithCert(ca *tlsca.CA, cn string) *http.Client {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(e.t, err)
	cert, err := ca.ClientCertificate(cn, &key.PublicKey, time.Hour)
	require.NoError(e.t, err)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}}
	e.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// A terminal may add mutual TLS: its certificate must come from the CA and
// name the terminal that signs.
func TestTerminalMutualTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	term := e.enrolTerminal("bar-1")
	plain := e.client
	defer func() { e.client = plain }()
	fetch := func() response {
		return e.do(request{method: "POST", path: "/v1/terminal/session-keys", terminal: term, body: apitype.SessionKeyRequest{Event: "fest"}})
	}

	e.client = e.clientWithCert(e.ca, api.KeyID(org, "bar-1"))
	r := fetch()
	require.Equal(t, 201, r.status, string(r.body))

	e.client = e.clientWithCert(e.ca, api.KeyID(org, "bar-2"))
	before := e.fingerprint()
	r = fetch()
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Contains(t, string(r.body), "client certificate names another terminal")
	require.Equal(t, before, e.fingerprint())

	other, _, err := tlsca.Ensure(filepath.Join(t.TempDir(), "other"), nil)
	require.NoError(t, err)
	e.client = e.clientWithCert(other, api.KeyID(org, "bar-1"))
	req, _ := e.newRequest(request{method: "GET", path: "/healthz"})
	_, err = e.client.Do(req)
	require.Error(t, err, "a certificate of another CA fails the handshake")
}
