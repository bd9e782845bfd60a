// Package httpsig signs and verifies HTTP requests with the subset of HTTP
// Message Signatures (RFC 9421) that Loopcard terminals use: one Ed25519
// signature labelled "sig" over the components "@method", "@authority",
// "@path", "@query" and "content-digest", with the parameters created, nonce,
// keyid and alg="ed25519"; the body is bound by a SHA-256 Content-Digest
// (RFC 9530).
//
// Verify checks the signature, the digest and the age of the signature;
// VerifyHeaders and CheckDigest are its two halves, for a server that
// knows the sender before it reads the body;
// refusing a nonce seen before (replay) is the caller's job, because it needs
// shared storage: Params.Nonce and Params.KeyID name what to remember.
package httpsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Label is the signature label this package writes and reads.
const Label = "sig"

// Alg is the only signature algorithm accepted.
const Alg = "ed25519"

// Components are the covered components, in the order they are signed.
var Components = []string{"@method", "@authority", "@path", "@query", "content-digest"}

// Bounds of a nonce's length in characters.
const (
	MinNonceLen = 16
	MaxNonceLen = 64
)

// Errors of Verify; the API maps them all to 401.
var (
	// ErrMissing: the request carries no signature, or misses a header.
	ErrMissing = errors.New("httpsig: request is not signed")
	// ErrMalformed: a signature header does not parse, or lacks a
	// required component or parameter.
	ErrMalformed = errors.New("httpsig: malformed signature")
	// ErrStale: created is too old, or in the future.
	ErrStale = errors.New("httpsig: signature is stale")
	// ErrDigest: Content-Digest does not match the body.
	ErrDigest = errors.New("httpsig: content digest does not match the body")
	// ErrSignature: the signature does not verify with the key.
	ErrSignature = errors.New("httpsig: bad signature")
)

// Params are the signature parameters of a verified request.
type Params struct {
	KeyID   string
	Nonce   string
	Created time.Time
}

// Signer signs requests with an Ed25519 key.
type Signer struct {
	key   ed25519.PrivateKey
	keyID string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewSigner returns a Signer for key, named keyID in the signature.
func NewSigner(key ed25519.PrivateKey, keyID string) *Signer {
	return &Signer{key: key, keyID: keyID}
}

// Sign sets the Content-Digest, Signature-Input and Signature headers of
// req for body, which must be the exact body req sends (nil for none). It
// draws a fresh nonce for every call.
func (s *Signer) Sign(req *http.Request, body []byte) error {
	var n [18]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("httpsig: nonce: %w", err)
	}
	return s.SignWithNonce(req, body, base64.RawURLEncoding.EncodeToString(n[:]))
}

// SignWithNonce is Sign with a given nonce: for tests that replay requests.
func (s *Signer) SignWithNonce(req *http.Request, body []byte, nonce string) error {
	if !validToken(nonce, MinNonceLen, MaxNonceLen) || !validToken(s.keyID, 1, 128) {
		return fmt.Errorf("%w: nonce and key id must be printable without quotes or backslashes", ErrMalformed)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	req.Header.Set("Content-Digest", ContentDigest(body))
	params := signatureParams(now().Unix(), nonce, s.keyID)
	base := signatureBase(req.Method, authority(req), req.URL.EscapedPath(), req.URL.RawQuery, req.Header.Get("Content-Digest"), params)
	sig := ed25519.Sign(s.key, []byte(base))
	req.Header.Set("Signature-Input", Label+"="+params)
	req.Header.Set("Signature", Label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return nil
}

func authority(req *http.Request) string {
	if req.Host != "" {
		return strings.ToLower(req.Host)
	}
	return strings.ToLower(req.URL.Host)
}

// ContentDigest returns the RFC 9530 Content-Digest field value of body.
func ContentDigest(body []byte) string {
	h := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(h[:]) + ":"
}

func signatureParams(created int64, nonce, keyID string) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range Components {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(c))
	}
	b.WriteString(");created=")
	b.WriteString(strconv.FormatInt(created, 10))
	b.WriteString(`;nonce="` + nonce + `";keyid="` + keyID + `";alg="` + Alg + `"`)
	return b.String()
}

// signatureBase is RFC 9421 section 2.5 for this package's components.
func signatureBase(method, authority, path, rawQuery, digest, params string) string {
	if path == "" {
		path = "/"
	}
	var b strings.Builder
	line := func(name, value string) {
		b.WriteString(strconv.Quote(name))
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	line("@method", strings.ToUpper(method))
	line("@authority", authority)
	line("@path", path)
	line("@query", "?"+rawQuery)
	line("content-digest", digest)
	b.WriteString(`"@signature-params": `)
	b.WriteString(params)
	return b.String()
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// MaxAge is how old created may be; 0 means 60 seconds.
	MaxAge time.Duration
	// MaxSkew is how far in the future created may be; 0 means 5 seconds.
	MaxSkew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// KeyFunc returns the public key named by a signature's keyid.
type KeyFunc func(keyID string) (ed25519.PublicKey, error)

// Verify checks the signature of req over body (the request's whole body,
// already read): VerifyHeaders, then CheckDigest. It returns the
// signature's parameters; errors wrap ErrMissing, ErrMalformed, ErrStale,
// ErrDigest or ErrSignature, or are the error of key.
func Verify(req *http.Request, body []byte, opts VerifyOptions, key KeyFunc) (Params, error) {
	p, err := VerifyHeaders(req, opts, key)
	if err != nil {
		return Params{}, err
	}
	if err := CheckDigest(req, body); err != nil {
		return Params{}, err
	}
	return p, nil
}

// CheckDigest checks that req's Content-Digest, which the signature
// covers, is body's. Errors wrap ErrMissing, ErrMalformed or ErrDigest.
func CheckDigest(req *http.Request, body []byte) error {
	digest := req.Header.Values("Content-Digest")
	if len(digest) == 0 {
		return ErrMissing
	}
	if len(digest) != 1 {
		return fmt.Errorf("%w: repeated signature headers", ErrMalformed)
	}
	if digest[0] != ContentDigest(body) {
		return ErrDigest
	}
	return nil
}

// VerifyHeaders checks the signature of req without its body: the
// signature covers the Content-Digest header, not the body, so a server
// can know who sent a request before it reads a byte of the body. Whoever
// calls it must read the body and call CheckDigest before trusting it.
// It returns the signature's parameters; errors wrap ErrMissing,
// ErrMalformed, ErrStale or ErrSignature, or are the error of key.
func VerifyHeaders(req *http.Request, opts VerifyOptions, key KeyFunc) (Params, error) {
	inputs, sigs := req.Header.Values("Signature-Input"), req.Header.Values("Signature")
	digest := req.Header.Values("Content-Digest")
	if len(inputs) == 0 || len(sigs) == 0 || len(digest) == 0 {
		return Params{}, ErrMissing
	}
	if len(inputs) != 1 || len(sigs) != 1 || len(digest) != 1 {
		return Params{}, fmt.Errorf("%w: repeated signature headers", ErrMalformed)
	}
	label, rest, ok := strings.Cut(inputs[0], "=")
	if !ok || strings.TrimSpace(label) != Label {
		return Params{}, fmt.Errorf("%w: one signature labelled %q expected", ErrMalformed, Label)
	}
	params := strings.TrimSpace(rest)
	p, err := parseParams(params)
	if err != nil {
		return Params{}, err
	}
	sigLabel, sigVal, ok := strings.Cut(sigs[0], "=")
	sigVal = strings.TrimSpace(sigVal)
	if !ok || strings.TrimSpace(sigLabel) != Label || len(sigVal) < 2 || sigVal[0] != ':' || sigVal[len(sigVal)-1] != ':' {
		return Params{}, fmt.Errorf("%w: Signature header", ErrMalformed)
	}
	sig, err := base64.StdEncoding.DecodeString(sigVal[1 : len(sigVal)-1])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Params{}, fmt.Errorf("%w: Signature value", ErrMalformed)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	maxAge, skew := opts.MaxAge, opts.MaxSkew
	if maxAge == 0 {
		maxAge = 60 * time.Second
	}
	if skew == 0 {
		skew = 5 * time.Second
	}
	t := now()
	if p.Created.Before(t.Add(-maxAge)) || p.Created.After(t.Add(skew)) {
		return Params{}, ErrStale
	}
	pub, err := key(p.KeyID)
	if err != nil {
		return Params{}, err
	}
	base := signatureBase(req.Method, strings.ToLower(req.Host), req.URL.EscapedPath(), req.URL.RawQuery, digest[0], params)
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(base), sig) {
		return Params{}, ErrSignature
	}
	return p, nil
}

// parseParams reads the inner list and parameters of Signature-Input
// (RFC 8941 syntax, restricted to what Sign writes: the exact component
// list, then created, nonce, keyid and alg in any order, nothing else).
func parseParams(s string) (Params, error) {
	bad := func(what string) (Params, error) { return Params{}, fmt.Errorf("%w: %s", ErrMalformed, what) }
	if !strings.HasPrefix(s, "(") {
		return bad("covered components")
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return bad("covered components")
	}
	comps := strings.Fields(s[1:end])
	if len(comps) != len(Components) {
		return bad("covered components must be " + strings.Join(Components, " "))
	}
	for i, c := range comps {
		if c != strconv.Quote(Components[i]) {
			return bad("covered components must be " + strings.Join(Components, " "))
		}
	}
	var p Params
	seen := map[string]bool{}
	for _, kv := range strings.Split(s[end+1:], ";")[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return bad("parameters")
		}
		seen[k] = true
		switch k {
		case "created":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return bad("created")
			}
			p.Created = time.Unix(n, 0)
		case "nonce", "keyid", "alg":
			if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				return bad(k)
			}
			v = v[1 : len(v)-1]
			switch k {
			case "nonce":
				if !validToken(v, MinNonceLen, MaxNonceLen) {
					return bad("nonce")
				}
				p.Nonce = v
			case "keyid":
				if !validToken(v, 1, 128) {
					return bad("keyid")
				}
				p.KeyID = v
			case "alg":
				if v != Alg {
					return bad("alg must be " + Alg)
				}
			}
		default:
			return bad("unknown parameter")
		}
	}
	if len(seen) != 4 {
		return bad("created, nonce, keyid and alg are required")
	}
	return p, nil
}

// validToken reports whether s has n characters, min <= n <= max, all
// visible ASCII other than quote, backslash, semicolon and space.
func validToken(s string, min, max int) bool {
	if len(s) < min || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' || c == ';' {
			return false
		}
	}
	return true
}
