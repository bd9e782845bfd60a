// Package softhsm sets up SoftHSM2 tokens: a private token for each test that
// needs an HSM, and the embedded default token that the loopcard CLI uses
// under its data directory when no --hsm is given.
//
// SoftHSM2 reads its configuration from the file named by the SOFTHSM2_CONF
// environment variable, once, at C_Initialize. That variable is process-wide,
// so this package owns it: NewTestToken points it at one configuration per
// test process (every test token is a separate token label in the same token
// directory), and Embedded points it at the data directory's configuration.
// Neither PINs nor keys are ever logged or put in error messages.
package softhsm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/loopcard/loopcard/keys/pkcs11uri"
)

// ConfEnv is the environment variable SoftHSM2 reads its configuration from.
const ConfEnv = "SOFTHSM2_CONF"

// modulePaths are where Debian and Ubuntu install the SoftHSM2 PKCS#11 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// ErrNotInstalled is returned when the SoftHSM2 module or its tools are
// missing from this machine.
var ErrNotInstalled = errors.New("softhsm2 is not installed: install softhsm2 (scripts/setup)")

// ModulePath returns the path of the SoftHSM2 PKCS#11 module.
// It returns ErrNotInstalled when the module is not found.
func ModulePath() (string, error) {
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// WriteConfig writes a SoftHSM2 configuration file at path that keeps its
// tokens in tokenDir, with the file object store and error-only logging.
func WriteConfig(path, tokenDir string) error {
	if err := os.MkdirAll(tokenDir, 0o700); err != nil {
		return fmt.Errorf("softhsm: token directory: %w", err)
	}
	conf := "# written by loopcard\n" +
		"directories.tokendir = " + tokenDir + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("softhsm: configuration: %w", err)
	}
	return nil
}

// URI returns the RFC 7512 PKCS#11 URI of the token labelled token in module,
// whose user PIN is read from pinFile.
func URI(token, module, pinFile string) string {
	pinURL := url.URL{Scheme: "file", Path: pinFile}
	q := "module-path=" + pkcs11uri.Escape(module) + "&pin-source=" + pkcs11uri.Escape(pinURL.String())
	return "pkcs11:token=" + pkcs11uri.Escape(token) + "?" + q
}

// newPIN returns a random PIN of 32 hex digits. It is only ever written to a
// 0600 file and passed to the module, never logged.
func newPIN() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("softhsm: random PIN: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writePINFile creates path with mode 0600 holding pin. It fails if the file
// exists, so that a PIN is never silently replaced.
func writePINFile(path, pin string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("softhsm: PIN file: %w", err)
	}
	if _, err := f.WriteString(pin); err != nil {
		f.Close()
		return fmt.Errorf("softhsm: PIN file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("softhsm: PIN file: %w", err)
	}
	return nil
}

func absPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	return a, nil
}
