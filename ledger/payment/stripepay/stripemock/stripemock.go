// Package stripemock runs Stripe's own mock server, stripe-mock, for
// tests: the Stripe API answered from Stripe's OpenAPI spec, on a private
// unix socket. scripts/setup installs it (go install
// github.com/stripe/stripe-mock).
package stripemock

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"
)

// Version is the stripe-mock scripts/setup installs.
const Version = "v0.203.0"

// Binary finds stripe-mock on PATH or in GOPATH/bin; "" if absent.
func Binary() string {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", "stripe-mock")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// Start runs stripe-mock until the test ends and returns the API's base
// URL and an HTTP client that reaches it.
func Start(t testing.TB) (string, *http.Client) {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Fatalf("stripe-mock is not installed: run scripts/setup (go install github.com/stripe/stripe-mock@%s)", Version)
	}
	dir, err := os.MkdirTemp("", "stripemock")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	cmd := exec.Command(bin, "-http-unix", sock)
	if err := cmd.Start(); err != nil {
		t.Fatalf("stripe-mock: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	})
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stripe-mock did not start within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://stripe-mock", &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Event returns the JSON of a Stripe event of type typ about object, as
// Stripe sends it to a webhook endpoint of stripe-go's API version.
func Event(id, typ string, created time.Time, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": stripe.APIVersion,
		"created": created.Unix(), "livemode": false, "pending_webhooks": 1, "type": typ,
		"data": map[string]any{"object": object}})
	if err != nil {
		panic(err)
	}
	return b
}

// Sign returns the Stripe-Signature header of body sent at t, made by
// stripe-go's own signer (webhook.GenerateTestSignedPayload): exactly as
// Stripe signs.
func Sign(secret string, body []byte, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: t}).Header
}
