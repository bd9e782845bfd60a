package httpsig_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"

	"github.com/loopcard/loopcard/api/httpsig"
)

// A terminal signs each request with its enrolled Ed25519 key; the key id
// is "ORG:TERMINAL", as the enrol answer gives it.
func ExampleSigner_Sign() {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	signer := httpsig.NewSigner(key, "1:bar-1")

	body := []byte(`{"event":"fest"}`)
	req, _ := http.NewRequest("POST", "https://127.0.0.1:8443/v1/terminal/session-keys", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := signer.Sign(req, body); err != nil {
		panic(err)
	}
	fmt.Println(req.Header.Get("Content-Digest"))
	fmt.Println(strings.SplitN(req.Header.Get("Signature-Input"), ";", 2)[0])
	// Output:
	// sha-256=:4JVKGWMHG4eRgD90svmAHxt3/5ZNm+Qth7NwpxP2A+U=:
	// sig=("@method" "@authority" "@path" "@query" "content-digest")
}
