package pcsc_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// opensc reports how opensc-tool (Debian package opensc) prints a response.
func opensc(resp []byte) string {
	n := len(resp) - 2
	var b strings.Builder
	fmt.Fprintf(&b, "Received (SW1=0x%02X, SW2=0x%02X):\n", resp[n], resp[n+1])
	for _, x := range resp[:n] {
		fmt.Fprintf(&b, "%02X ", x)
	}
	return b.String()
}

// Standard PC/SC tools see the virtual card in the vpcd slot as a card and
// get DESFire answers from it.
func TestOpenSCTool(t *testing.T) {
	env := pcsctest.Shared(t)
	if _, err := exec.LookPath("opensc-tool"); err != nil {
		t.Fatalf("opensc-tool not found: install the Debian package opensc: %v", err)
	}
	card, err := vcard.New(vcard.Options{UID: testUID})
	require.NoError(t, err)
	env.Insert(t, card)

	// The same commands, answered by an identical card in-process.
	twin, err := vcard.New(vcard.Options{UID: testUID})
	require.NoError(t, err)
	cmds := [][]byte{{0x90, 0x60, 0x00, 0x00, 0x00}, {0x90, 0xAF, 0x00, 0x00, 0x00}, {0x90, 0xAF, 0x00, 0x00, 0x00}}
	var want []string
	for _, c := range cmds {
		want = append(want, opensc(twin.Transmit(c)))
	}
	require.Contains(t, want[2], "04 78 2E 21 80 1D 80 ", "the last frame carries the UID")

	tool := func(t *testing.T, args ...string) string {
		t.Helper()
		cmd := exec.Command("opensc-tool", args...)
		cmd.Env = env.Environ()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "opensc-tool %v:\n%s", args, out)
		return string(out)
	}
	t.Run("list", func(t *testing.T) {
		out := tool(t, "-l")
		require.Regexp(t, `0\s+Yes\s+`+env.Reader, out, "reader 0 has a card")
	})
	t.Run("ATR", func(t *testing.T) {
		out := tool(t, "-r", "0", "-a")
		require.Contains(t, out, "3b:81:80:01:80:80")
	})
	for _, sel := range []string{env.Reader, "0"} {
		t.Run("GetVersion via reader "+sel, func(t *testing.T) {
			out := tool(t, "-r", sel, "-s", "90600000 00", "-s", "90AF0000 00", "-s", "90AF0000 00")
			rest := out
			for i, w := range want {
				j := strings.Index(rest, w)
				require.GreaterOrEqual(t, j, 0, "frame %d %q missing or out of order in:\n%s", i, w, out)
				rest = rest[j+len(w):]
			}
		})
	}
}
