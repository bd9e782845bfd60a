package conformance_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/vcard"
	"github.com/loopcard/loopcard/personalize/vcard/conformance"
)

// inProcess runs the suite against a *vcard.Card directly.
type inProcess struct{ c *vcard.Card }

func (h *inProcess) Transmit(apdu []byte) ([]byte, error) { return h.c.Transmit(apdu), nil }

func (h *inProcess) Tear(*testing.T) {
	h.c.PowerOff()
	h.c.PowerOn()
}

func (h *inProcess) Reset(t *testing.T) {
	c, err := vcard.New(vcard.Options{UID: []byte{0x04, 0x52, 0x61, 0x7A, 0x11, 0x90, 0x80}})
	require.NoError(t, err)
	h.c = c
}

func TestInProcess(t *testing.T) {
	conformance.Run(t, &inProcess{})
}
