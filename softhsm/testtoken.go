package softhsm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// testTokens is the process-wide state of NewTestToken: one SoftHSM2
// configuration per test process, removed when its last token is.
var testTokens struct {
	sync.Mutex
	dir  string // created once per process, recreated after full cleanup
	live int
	next int
}

// NewTestToken creates a fresh SoftHSM2 token for t and returns its RFC 7512
// URI; the user PIN is in a 0600 file under t.TempDir(). All test tokens of a
// process share one configuration (SOFTHSM2_CONF is process-wide and read at
// C_Initialize) and differ by label. When t ends the token is deleted, and with
// the last one the configuration too, so callers must close their HSM handles
// in their own t.Cleanup (registered after this call, they run before it).
//
// SoftHSM2 reads its token directory at C_Initialize: a token created while
// an HSM is open in the process stays invisible until every HSM of the
// process is closed. Create the tokens a test needs before opening any, and
// do not run HSM tests in parallel.
//
// A machine without SoftHSM2 makes the test fail with a message that names
// the Debian package to install.
func NewTestToken(t testing.TB) string {
	t.Helper()
	module, err := ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Fatalf("softhsm2-util not found: install softhsm2 (scripts/setup)")
	}

	testTokens.Lock()
	defer testTokens.Unlock()
	if testTokens.dir == "" {
		d, err := os.MkdirTemp("", "loopcard-softhsm-")
		if err != nil {
			t.Fatalf("softhsm: %v", err)
		}
		testTokens.dir = d
	}
	conf := filepath.Join(testTokens.dir, "softhsm2.conf")
	if testTokens.live == 0 {
		if err := WriteConfig(conf, filepath.Join(testTokens.dir, "tokens")); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if err := os.Setenv(ConfEnv, conf); err != nil {
		t.Fatalf("softhsm: %v", err)
	}
	testTokens.next++
	label := fmt.Sprintf("test-%d-%d", os.Getpid(), testTokens.next)
	pin, err := newPIN()
	if err != nil {
		t.Fatalf("%v", err)
	}
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := writePINFile(pinFile, pin); err != nil {
		t.Fatalf("%v", err)
	}
	// Test PINs are throwaway, so the command line is acceptable here; the
	// embedded default initialises its token in-process instead.
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", pin, "--pin", pin)
	cmd.Env = append(os.Environ(), ConfEnv+"="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	testTokens.live++

	t.Cleanup(func() {
		testTokens.Lock()
		defer testTokens.Unlock()
		cmd := exec.Command(util, "--delete-token", "--token", label)
		cmd.Env = append(os.Environ(), ConfEnv+"="+conf)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("softhsm2-util --delete-token: %v: %s", err, out)
		}
		testTokens.live--
		if testTokens.live == 0 {
			if err := os.RemoveAll(testTokens.dir); err != nil {
				t.Errorf("softhsm: remove %s: %v", testTokens.dir, err)
			}
		}
	})
	return URI(label, module, pinFile)
}
