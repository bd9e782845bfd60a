package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/loopcard/loopcard/softhsm"
)

// noMechanisms is what the preflight test's token lacks: Ed25519 and ECDSA
// P-256, so hq-sign can be made neither way. SoftHSM2 2.6.1 reads the
// first name of a "-" list with its minus sign and ignores it, so the list
// starts with a mechanism Loopcard does not use (CKM_MD5).
const noMechanisms = "-CKM_MD5,CKM_EC_EDWARDS_KEY_PAIR_GEN,CKM_EDDSA,CKM_EC_KEY_PAIR_GEN,CKM_ECDSA"

// The HSM objects `keys init` creates, seen by OpenSC's pkcs11-tool, and
// `keys init` on a token that lacks mechanisms (issue 17, HSM objects).
func TestHSMObjects(t *testing.T) {
	module, err := softhsm.ModulePath()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := exec.LookPath("pkcs11-tool"); err != nil {
		t.Fatalf("pkcs11-tool not found: install the Debian package opensc (scripts/setup)")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/hsm",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("MODULE", module)
			env.Setenv("LOOPCARD_DATA_DIR", env.WorkDir+"/data")
			// No PostgreSQL: the HSM's commands run and say that they are in
			// no audit log (TestCLIAuditedHSM records them in one).
			env.Setenv("LOOPCARD_PG_BINDIR", env.WorkDir+"/no-postgresql")
			dir := filepath.Join(env.WorkDir, "nomech")
			if err := softhsm.WriteConfig(filepath.Join(dir, "softhsm2.conf"), filepath.Join(dir, "tokens")); err != nil {
				return err
			}
			f, err := os.OpenFile(filepath.Join(dir, "softhsm2.conf"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintf(f, "slots.mechanisms = %s\n", noMechanisms)
			return err
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"p11":        p11Cmd,
			"p11objects": p11Objects,
			"p11fixed":   p11Fixed,
		},
	})
}

// p11 runs pkcs11-tool on token (label) of the SoftHSM2 configuration
// $SOFTHSM2_CONF, logged in with the PIN in pinFile.
func p11(ts *testscript.TestScript, token, pinFile string, args ...string) (string, error) {
	pin, err := os.ReadFile(ts.MkAbs(pinFile))
	ts.Check(err)
	cmd := exec.Command("pkcs11-tool", append([]string{"--module", ts.Getenv("MODULE"), "--token-label", token,
		"--login", "--pin", strings.TrimSpace(string(pin))}, args...)...)
	cmd.Env = append(os.Environ(), softhsm.ConfEnv+"="+ts.Getenv(softhsm.ConfEnv))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// p11object is one object of pkcs11-tool --list-objects.
type p11object struct {
	kind, label, id, usage string
}

var p11Kinds = map[string]string{"Public Key Object": "pubkey", "Private Key Object": "privkey", "Secret Key Object": "secrkey"}

func listP11(ts *testscript.TestScript, token, pinFile string) []p11object {
	out, err := p11(ts, token, pinFile, "--list-objects")
	ts.Check(err)
	var objs []p11object
	for _, line := range strings.Split(out, "\n") {
		if k, _, ok := strings.Cut(line, ";"); ok && p11Kinds[k] != "" {
			objs = append(objs, p11object{kind: p11Kinds[k]})
			continue
		}
		if len(objs) == 0 {
			continue
		}
		o := &objs[len(objs)-1]
		name, value, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch name {
		case "label":
			o.label = strings.TrimSpace(value)
		case "ID":
			o.id = strings.TrimSpace(value)
		case "Usage":
			o.usage = strings.TrimSpace(value)
		}
	}
	return objs
}

// p11 TOKEN PINFILE ARGS... runs pkcs11-tool ARGS on the token.
func p11Cmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: p11 TOKEN PINFILE ARGS...")
	}
	out, err := p11(ts, args[0], args[1], args[2:]...)
	fmt.Fprint(ts.Stdout(), out)
	if (err != nil) != neg {
		ts.Fatalf("pkcs11-tool: %v", err)
	}
}

// p11objects TOKEN PINFILE prints how many objects the token holds.
func p11Objects(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: p11objects TOKEN PINFILE")
	}
	fmt.Fprintf(ts.Stdout(), "%d objects\n", len(listP11(ts, args[0], args[1])))
}

// p11fixed TOKEN PINFILE tries, with pkcs11-tool and the user PIN, to change
// an attribute (CKA_ID, through C_SetAttributeValue) of every key object,
// and prints one line per object: "LABEL TYPE not modifiable usage USAGE".
// It fails if a change is accepted. pkcs11-tool 0.23 does not print
// CKA_MODIFIABLE or CKA_COPYABLE, so a refused change (CKR_ACTION_PROHIBITED)
// is how it shows a key is not modifiable; CKA_COPYABLE is checked by the
// keys package's tests.
func p11Fixed(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: p11fixed TOKEN PINFILE")
	}
	objs := listP11(ts, args[0], args[1])
	if len(objs) == 0 {
		ts.Fatalf("pkcs11-tool lists no objects")
	}
	prohibited := regexp.MustCompile(`C_SetAttributeValue failed: rv = (CKR_ACTION_PROHIBITED|CKR_ATTRIBUTE_READ_ONLY|unknown PKCS11 error \(0x1b\))`)
	changed := 0
	for _, o := range objs {
		_, err := p11(ts, args[0], args[1], "--set-id", "00", "--id", o.id, "--type", o.kind)
		switch {
		case err == nil:
			changed++
			fmt.Fprintf(ts.Stdout(), "%s %s modifiable usage %s\n", o.label, o.kind, o.usage)
		case prohibited.MatchString(err.Error()):
			fmt.Fprintf(ts.Stdout(), "%s %s not modifiable usage %s\n", o.label, o.kind, o.usage)
		default:
			ts.Fatalf("pkcs11-tool --set-id on %s: %v", o.label, err)
		}
	}
	if changed > 0 != neg {
		ts.Fatalf("%d of %d key objects could be changed with the user PIN", changed, len(objs))
	}
}
