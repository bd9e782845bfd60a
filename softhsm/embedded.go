package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/pkcs11"
)

// EmbeddedLabel is the label of the embedded default token.
const EmbeddedLabel = "loopcard"

// Embedded prepares the embedded default HSM under dataDir: a SoftHSM2
// configuration at DATA_DIR/softhsm/softhsm2.conf, its tokens in
// DATA_DIR/softhsm/tokens, and a token labelled "loopcard" whose user PIN is in
// the 0600 file DATA_DIR/softhsm/pin. The token is initialised on first use
// (created reports that), in this process through C_InitToken so that no PIN
// appears on a command line; the SO PIN is random and discarded.
//
// Embedded sets SOFTHSM2_CONF for the process, so it must run before the
// PKCS#11 module is initialised in this process; otherwise it fails.
// It returns the RFC 7512 URI of the token, or ErrNotInstalled.
func Embedded(dataDir string) (uri string, created bool, err error) {
	module, err := ModulePath()
	if err != nil {
		return "", false, err
	}
	dir, err := absPath(filepath.Join(dataDir, "softhsm"))
	if err != nil {
		return "", false, err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	pinFile := filepath.Join(dir, "pin")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("softhsm: embedded token directory: %w", err)
	}
	// Rewritten every time, so that a moved data directory still works.
	if err := WriteConfig(conf, tokens); err != nil {
		return "", false, err
	}
	if err := os.Setenv(ConfEnv, conf); err != nil {
		return "", false, fmt.Errorf("softhsm: %w", err)
	}
	uri = URI(EmbeddedLabel, module, pinFile)

	entries, err := os.ReadDir(tokens)
	if err != nil {
		return "", false, fmt.Errorf("softhsm: embedded token directory: %w", err)
	}
	_, pinErr := os.Stat(pinFile)
	switch {
	case len(entries) > 0 && pinErr == nil:
		return uri, false, nil
	case len(entries) > 0:
		return "", false, fmt.Errorf("softhsm: the embedded token in %s has no PIN file %s: restore it, or remove %s to start over (this destroys its keys)", tokens, pinFile, dir)
	}

	// First use. A PIN file left by an interrupted first run is reused.
	pin, err := readOrCreatePIN(pinFile)
	if err != nil {
		return "", false, err
	}
	if err := initToken(module, EmbeddedLabel, pin); err != nil {
		return "", false, err
	}
	return uri, true, nil
}

func readOrCreatePIN(pinFile string) (string, error) {
	b, err := os.ReadFile(pinFile)
	if err == nil {
		pin := strings.TrimSpace(string(b))
		if len(pin) < 4 {
			return "", fmt.Errorf("softhsm: PIN file %s is too short: remove it to start over", pinFile)
		}
		return pin, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("softhsm: PIN file: %w", err)
	}
	pin, err := newPIN()
	if err != nil {
		return "", err
	}
	if err := writePINFile(pinFile, pin); err != nil {
		return "", err
	}
	return pin, nil
}

// initToken initialises a free SoftHSM2 slot as a token labelled label with
// user PIN pin, through the module in this process.
func initToken(module, label, pin string) (err error) {
	p := pkcs11.New(module)
	if p == nil {
		return fmt.Errorf("softhsm: cannot load %s: %w", module, ErrNotInstalled)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
			return errors.New("softhsm: the PKCS#11 module is already in use in this process: prepare the embedded token before opening the HSM")
		}
		return fmt.Errorf("softhsm: initialise module: %w", err)
	}
	defer func() {
		if ferr := p.Finalize(); ferr != nil && err == nil {
			err = fmt.Errorf("softhsm: finalise module: %w", ferr)
		}
	}()
	slot, ok, err := freeSlot(p)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("softhsm: no free slot to initialise a token in")
	}
	so, err := newPIN()
	if err != nil {
		return err
	}
	if err := p.InitToken(slot, so, label); err != nil {
		return fmt.Errorf("softhsm: initialise token %q: %w", label, err)
	}
	// SoftHSM2 moves an initialised token to a slot of its own.
	slot, err = slotByLabel(p, label)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("softhsm: open session: %w", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_SO, so); err != nil {
		return fmt.Errorf("softhsm: SO login: %w", err)
	}
	defer p.Logout(sh)
	if err := p.InitPIN(sh, pin); err != nil {
		return fmt.Errorf("softhsm: set user PIN: %w", err)
	}
	return nil
}

func freeSlot(p *pkcs11.Ctx) (uint, bool, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, false, fmt.Errorf("softhsm: list slots: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			return 0, false, fmt.Errorf("softhsm: token info: %w", err)
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			return s, true, nil
		}
	}
	return 0, false, nil
}

func slotByLabel(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("softhsm: list slots: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			return 0, fmt.Errorf("softhsm: token info: %w", err)
		}
		if strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("softhsm: token %q not found after initialisation", label)
}
