package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The serve and token commands on embedded defaults (SoftHSM2 token,
// PostgreSQL and local CA under a temporary --data-dir), over real HTTPS.
func TestServeCLI(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/serve",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The embedded PostgreSQL runs as the postgres user when the
			// test runs as root: the data directory must be reachable.
			dir, err := os.MkdirTemp("", "lcserve-")
			if err != nil {
				return err
			}
			env.Defer(func() { os.RemoveAll(dir) })
			if err := os.Chmod(dir, 0o711); err != nil {
				return err
			}
			if err := os.Mkdir(dir+"/data", 0o711); err != nil {
				return err
			}
			env.Setenv("LOOPCARD_DATA_DIR", dir+"/data")
			env.Setenv("TODAY", time.Now().UTC().Format(time.DateOnly))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer ln.Close()
			env.Setenv("PORT", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			// PAYPORT is for the test payment provider's pages.
			ln2, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer ln2.Close()
			env.Setenv("PAYPORT", strconv.Itoa(ln2.Addr().(*net.TCPAddr).Port))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// https METHOD PATH [TOKENFILE]: one request to the server on
			// $PORT (or to PATH if it is a whole https:// address),
			// trusting the local CA; prints the status and the body.
			// It retries for up to 30 s while the server starts.
			"https": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 || len(args) > 3 {
					ts.Fatalf("usage: https METHOD PATH [TOKENFILE]")
				}
				var resp *http.Response
				for deadline := time.Now().Add(30 * time.Second); ; {
					// The server makes its CA when it starts: read it each try.
					pem, _ := os.ReadFile(filepath.Join(ts.Getenv("LOOPCARD_DATA_DIR"), "tls", "ca.pem"))
					pool := x509.NewCertPool()
					pool.AppendCertsFromPEM(pem)
					tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
					client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
					u := args[1]
					if !strings.HasPrefix(u, "https://") {
						u = "https://127.0.0.1:" + ts.Getenv("PORT") + u
					}
					req, err := http.NewRequest(args[0], u, nil)
					ts.Check(err)
					if len(args) == 3 {
						req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(ts.ReadFile(args[2])))
					}
					resp, err = client.Do(req)
					tr.CloseIdleConnections()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						ts.Fatalf("https: %v", err)
					}
					time.Sleep(200 * time.Millisecond)
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				ts.Check(err)
				fmt.Fprintf(ts.Stdout(), "%d\n%s", resp.StatusCode, body)
				if neg != (resp.StatusCode >= 400) {
					ts.Fatalf("status %d", resp.StatusCode)
				}
			},
		},
	})
}
