package desfire_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// replayLink is a Transmitter that expects a recorded exchange: each command
// must be the recorded one, byte for byte, and gets the recorded answer.
type replayLink struct {
	t     *testing.T
	steps []vcard.Step
}

func (r *replayLink) Transmit(apdu []byte) ([]byte, error) {
	for len(r.steps) > 0 && r.steps[0].Command == nil {
		r.steps = r.steps[1:]
	}
	if len(r.steps) == 0 {
		return nil, fmt.Errorf("unexpected command %X after the transcript", apdu)
	}
	s := r.steps[0]
	r.steps = r.steps[1:]
	require.Equal(r.t, fmt.Sprintf("%X", s.Command), fmt.Sprintf("%X", apdu), "the client must send what libfreefare sent")
	return s.Response, nil
}

// TestLegacyReplayLibfreefare replays libfreefare's legacy exchanges
// (tool-recorded through pcscd, in the conformance package's testdata) with
// this client: AuthenticateLegacy with the factory key, then the enciphered
// ChangeKeySettings of mifare-desfire-format and the SetConfiguration
// options 02 (ATS, padded with 80h after the CRC16) and 00 (random UID) of
// mifare-desfire-ev1-configure-*, must be the same bytes given libfreefare's
// RndA (recovered from its token with the known key). Before issue 18 the
// client refused these commands in a legacy session.
func TestLegacyReplayLibfreefare(t *testing.T) {
	for _, tc := range []struct {
		file string
		run  func(c *desfire.Card) error
	}{
		{"02-format", func(c *desfire.Card) error {
			if err := c.ChangeKeySettings(0x0F); err != nil {
				return err
			}
			return c.FormatPICC()
		}},
		{"08-ev1-configure-ats", func(c *desfire.Card) error {
			return c.SetConfiguration(desfire.ConfigATS, []byte{0x06, 0x75, 0x77, 0x81, 0x02, 0x80})
		}},
		{"09-ev1-configure-random-uid", func(c *desfire.Card) error {
			return c.SetConfiguration(desfire.ConfigPICC, []byte{0x02})
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("../vcard/conformance/testdata/transcripts/" + tc.file + ".trace")
			require.NoError(t, err)
			tr, err := vcard.ParseTranscript(b)
			require.NoError(t, err)
			var rndA []byte
			steps := tr.Steps
			for i, s := range steps {
				if bytes.HasPrefix(s.Command, []byte{0x90, 0x0A}) {
					token := steps[i+2].Command[5 : 5+16] // after the card's randoms
					pt, err := desfire.LegacyReceive(make([]byte, 16), token)
					require.NoError(t, err)
					rndA = pt[:8]
					steps = steps[i:]
					break
				}
			}
			require.NotNil(t, rndA)
			link := &replayLink{t: t, steps: steps}
			c := desfire.New(link, desfire.WithRand(bytes.NewReader(rndA)))
			require.NoError(t, c.AuthenticateLegacy(0, desfire.DefaultDESKey()))
			require.NoError(t, tc.run(c))
			for _, s := range link.steps {
				require.Nil(t, s.Command, "the client stopped before the end of the transcript")
			}
		})
	}
}
