package conformance_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/vcard"
)

// TestTranscripts replays, APDU by APDU, what other people's tools sent to
// `loopcard vcard` through pcscd and vpcd (testdata/transcripts, recorded
// with `loopcard vcard --trace`): libfreefare's mifare-desfire-info,
// -format, -create-ndef, -write-ndef, -read-ndef and -ev1-configure-*, and a
// pyscard ISO/IEC 7816-4 walk. The card gets the same UID and draws the same
// randoms, so every response must come back byte for byte; each file's
// header names the NXP document and section of the rules it checks. The
// files run in order on one card, each from the state the one before left.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.trace"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 10)
	var all []vcard.Transcript
	var rnd []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		tr, err := vcard.ParseTranscript(b)
		require.NoError(t, err, f)
		all = append(all, tr)
		rnd = append(rnd, tr.Rand()...)
	}
	card, err := vcard.New(vcard.Options{UID: []byte{0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6}, Rand: bytes.NewReader(rnd)})
	require.NoError(t, err)
	for i, tr := range all {
		name := filepath.Base(files[i])
		n := 0
		for _, s := range tr.Steps {
			switch {
			case s.PowerOn:
				card.PowerOn()
			case s.Command != nil:
				n++
				require.Equal(t, s.Response, card.Transmit(s.Command), "%s: command %d %X", name, n, s.Command)
			}
		}
		require.Positive(t, n, name)
	}
}
