package httpsig

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func signed(t testing.TB, s *Signer, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, s.Sign(req, body))
	return req
}

func TestVerify(t *testing.T) {
	key := newKey(t, 7)
	other := newKey(t, 9)
	now := time.Unix(1_800_000_000, 0)
	s := NewSigner(key, "1:term-1")
	s.Now = func() time.Time { return now }
	keys := func(id string) (ed25519.PublicKey, error) {
		if id != "1:term-1" {
			return nil, errors.New("unknown key")
		}
		return key.Public().(ed25519.PublicKey), nil
	}
	body := []byte(`{"transactions":[]}`)
	tests := []struct {
		name   string
		mutate func(r *http.Request) []byte // returns the body the server sees
		at     time.Time
		keys   KeyFunc
		want   error
	}{
		{name: "valid", mutate: func(r *http.Request) []byte { return body }},
		{name: "valid 59 s later", at: now.Add(59 * time.Second), mutate: func(r *http.Request) []byte { return body }},
		{name: "stale", at: now.Add(61 * time.Second), mutate: func(r *http.Request) []byte { return body }, want: ErrStale},
		{name: "from the future", at: now.Add(-6 * time.Second), mutate: func(r *http.Request) []byte { return body }, want: ErrStale},
		{name: "body changed", mutate: func(r *http.Request) []byte { return []byte(`{"transactions":[1]}`) }, want: ErrDigest},
		{name: "digest and body changed", mutate: func(r *http.Request) []byte {
			b := []byte(`{}`)
			r.Header.Set("Content-Digest", ContentDigest(b))
			return b
		}, want: ErrSignature},
		{name: "method changed", mutate: func(r *http.Request) []byte { r.Method = "PUT"; return body }, want: ErrSignature},
		{name: "path changed", mutate: func(r *http.Request) []byte { r.URL.Path = "/v1/other"; return body }, want: ErrSignature},
		{name: "query added", mutate: func(r *http.Request) []byte { r.URL.RawQuery = "card=01"; return body }, want: ErrSignature},
		{name: "authority changed", mutate: func(r *http.Request) []byte { r.Host = "evil.example"; return body }, want: ErrSignature},
		{name: "other key", keys: func(string) (ed25519.PublicKey, error) { return other.Public().(ed25519.PublicKey), nil },
			mutate: func(r *http.Request) []byte { return body }, want: ErrSignature},
		{name: "no signature", mutate: func(r *http.Request) []byte { r.Header.Del("Signature"); return body }, want: ErrMissing},
		{name: "no digest", mutate: func(r *http.Request) []byte { r.Header.Del("Content-Digest"); return body }, want: ErrMissing},
		{name: "two inputs", mutate: func(r *http.Request) []byte {
			r.Header.Add("Signature-Input", r.Header.Get("Signature-Input"))
			return body
		}, want: ErrMalformed},
		{name: "fewer components", mutate: func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), ` "content-digest"`, "", 1))
			return body
		}, want: ErrMalformed},
		{name: "other alg", mutate: func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), `alg="ed25519"`, `alg="hmac-sha256"`, 1))
			return body
		}, want: ErrMalformed},
		{name: "no nonce", mutate: func(r *http.Request) []byte {
			in := r.Header.Get("Signature-Input")
			i := strings.Index(in, ";nonce=")
			j := strings.Index(in, ";keyid=")
			r.Header.Set("Signature-Input", in[:i]+in[j:])
			return body
		}, want: ErrMalformed},
		{name: "other label", mutate: func(r *http.Request) []byte {
			r.Header.Set("Signature-Input", "x"+r.Header.Get("Signature-Input"))
			return body
		}, want: ErrMalformed},
		{name: "signature truncated", mutate: func(r *http.Request) []byte {
			r.Header.Set("Signature", "sig=:AAAA:")
			return body
		}, want: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := signed(t, s, "POST", "https://127.0.0.1:8443/v1/terminal/batches", body)
			req.Host = "127.0.0.1:8443"
			seen := tc.mutate(req)
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			kf := keys
			if tc.keys != nil {
				kf = tc.keys
			}
			p, err := Verify(req, seen, VerifyOptions{Now: func() time.Time { return at }}, kf)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "1:term-1", p.KeyID)
			require.Equal(t, now, p.Created)
			require.GreaterOrEqual(t, len(p.Nonce), MinNonceLen)
		})
	}
}

func TestNoncesDiffer(t *testing.T) {
	s := NewSigner(newKey(t, 1), "k")
	a := signed(t, s, "GET", "https://127.0.0.1/v1/x", nil)
	b := signed(t, s, "GET", "https://127.0.0.1/v1/x", nil)
	pa, err := parseParams(strings.TrimPrefix(a.Header.Get("Signature-Input"), "sig="))
	require.NoError(t, err)
	pb, err := parseParams(strings.TrimPrefix(b.Header.Get("Signature-Input"), "sig="))
	require.NoError(t, err)
	require.NotEqual(t, pa.Nonce, pb.Nonce)
}

func TestSignatureBase(t *testing.T) {
	// The signature base follows RFC 9421 section 2.5, line by line.
	got := signatureBase("post", "example.com", "/v1/x", "a=1", "sha-256=:X:", `("@method");created=1`)
	want := "\"@method\": POST\n\"@authority\": example.com\n\"@path\": /v1/x\n\"@query\": ?a=1\n" +
		"\"content-digest\": sha-256=:X:\n\"@signature-params\": (\"@method\");created=1"
	require.Equal(t, want, got)
	// RFC 9530 section 2: the digest of an empty body.
	require.Equal(t, "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", ContentDigest(nil))
}

func FuzzParseParams(f *testing.F) {
	f.Add(signatureParams(1_800_000_000, "abcdefghijklmnopqrstuv", "1:term-1"))
	f.Add(`("@method");created=1`)
	f.Add(`(`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseParams(s)
		if err != nil {
			return
		}
		// Whatever parses names a key and a nonce, and its canonical form parses the same.
		require.NotEmpty(t, p.KeyID)
		require.GreaterOrEqual(t, len(p.Nonce), MinNonceLen)
		q, err := parseParams(signatureParams(p.Created.Unix(), p.Nonce, p.KeyID))
		require.NoError(t, err)
		require.Equal(t, p, q)
	})
}
