package vcard_test

import (
	"encoding/hex"
	"encoding/json"
	testvectors "github.com/loopcard/loopcard/keys/vectors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

const (
	plain = desfire.CommPlain
	mac   = desfire.CommMAC
	full  = desfire.CommFull
)

func TestATRAndGetUID(t *testing.T) {
	c := newCard(t, vcard.Options{})
	atr := c.ATR()
	require.Equal(t, unhex(t, "3B81800180 80"), atr)
	var tck byte
	for _, b := range atr[1:] {
		tck ^= b
	}
	require.Zero(t, tck, "TCK makes the XOR of T0..TCK zero")
	require.Equal(t, append(slices.Clone(testUID), 0x90, 0x00), c.Transmit(unhex(t, "FFCA000000")))
	require.Equal(t, testUID, c.UID())

	r := newCard(t, vcard.Options{RandomUID: true, Rand: &fixedRand{b: unhex(t, "A1B2C3 D4E5F6")}})
	require.Equal(t, unhex(t, "08A1B2C3 9000"), r.Transmit(unhex(t, "FFCA000000")))
	r.PowerOff()
	r.PowerOn()
	require.Equal(t, unhex(t, "08D4E5F6"), r.UID(), "a new random UID on every power-on")
	_, err := vcard.New(vcard.Options{UID: []byte{0x05, 1, 2, 3, 4, 5, 6}})
	require.ErrorIs(t, err, vcard.ErrOptions)
}

func TestTransmitFraming(t *testing.T) {
	c := newCard(t, vcard.Options{})
	for _, tc := range []struct {
		name, apdu, want string
	}{
		{"too short", "9060", "6700"},
		{"Lc beyond data", "906000000501", "6700"},
		{"Lc zero with data", "90600000000000", "6700"},
		{"wrong P1", "9060010000", "6A86"},
		{"unknown class", "8060000000", "6E00"},
		{"ISO SELECT by DF name without a name", "00A4040000", "6700"},
		{"ISO SELECT of the PICC by DF name", "00A4040007D2760000850100", "9000"},
		{"ISO SELECT of an unknown DF name", "00A4040C07D2760000850101", "6A82"},
		{"ISO GET CHALLENGE of a wrong length", "0084000004", "6700"},
		{"ISO instruction a DESFire lacks", "00CA000000", "6D00"},
		{"reader pseudo-APDU other than GET UID", "FFB0000000", "6D00"},
		{"GET UID with P1", "FFCA010000", "6A81"},
		{"unknown native command", "90EE000000", "911C"},
		{"additional frame with nothing pending", "90AF000000", "911C"},
		{"free memory case 2", "906E000000", "001F009100"},
		{"free memory case 1", "906E0000", "001F009100"},
		{"GetKeySettings with data", "904500000100", "917E"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, unhex(t, tc.want), c.Transmit(unhex(t, tc.apdu)))
		})
	}
	c.PowerOff()
	require.Equal(t, unhex(t, "6400"), c.Transmit(unhex(t, "906E000000")), "no card in the field")
}

func TestFactoryCard(t *testing.T) {
	c := newCard(t, vcard.Options{})
	// GetVersion: three frames of 7, 7 and 14 bytes.
	require.Equal(t, unhex(t, "04010112001A05 91AF"), c.Transmit(unhex(t, "9060000000")))
	require.Equal(t, unhex(t, "04010112001A05 91AF"), c.Transmit(unhex(t, "90AF000000")))
	last := c.Transmit(unhex(t, "90AF000000"))
	require.Len(t, last, 16)
	require.Equal(t, testUID, last[:7])
	require.Equal(t, unhex(t, "9100"), last[14:])

	x := newClient(t, c)
	require.Equal(t, unhex(t, "0F01"), x.ok(desfire.CmdGetKeySettings, nil, nil, plain))
	require.Empty(t, x.ok(desfire.CmdGetApplicationIDs, nil, nil, plain))
	require.Equal(t, []byte{0}, x.ok(desfire.CmdGetKeyVersion, []byte{0}, nil, plain))
	st, _ := x.do(desfire.CmdGetKeyVersion, []byte{1}, nil, plain)
	require.Equal(t, desfire.StatusNoSuchKey, st)
	st, _ = x.do(desfire.CmdGetCardUID, nil, nil, plain)
	require.Equal(t, desfire.StatusPermissionDenied, st, "GetCardUID needs authentication")
	require.Equal(t, desfire.StatusApplicationNotFound, x.selectApp(0x123456))
	st, _ = x.do(desfire.CmdFormatPICC, nil, nil, plain)
	require.Equal(t, desfire.StatusPermissionDenied, st, "FormatPICC needs the PICC master key")
}

// vectorFile is the part of shared/vectors/desfire.json used here.
type vectorFile struct {
	EV2First []struct {
		Key      string `json:"key"`
		RndA     string `json:"rnd_a"`
		RndB     string `json:"rnd_b"`
		TI       string `json:"ti"`
		Exchange []struct {
			Command  string `json:"command"`
			Response string `json:"response"`
		} `json:"exchange"`
		SesEnc string `json:"ses_auth_enc_key"`
		SesMAC string `json:"ses_auth_mac_key"`
	} `json:"authenticate_ev2_first"`
}

// TestEV2FirstVector replays AN12196 section 6.6 against the card, with the
// card's RndB and TI injected, and checks every byte the card sends.
func TestEV2FirstVector(t *testing.T) {
	var vf vectorFile
	require.NoError(t, json.Unmarshal(testvectors.DESFireJSON, &vf))
	require.NotEmpty(t, vf.EV2First)
	for _, v := range vf.EV2First {
		c := newCard(t, vcard.Options{Rand: &fixedRand{b: unhex(t, v.RndB+v.TI)}})
		x := newClient(t, c)
		// An application with AES keys of zeros holds key 0 of the vector.
		x.ok(desfire.CmdCreateApplication, nil, unhex(t, "010000 0F 81"), plain)
		require.Zero(t, x.selectApp(0x000001))
		for i, step := range v.Exchange {
			require.Equal(t, strings.ToUpper(step.Response),
				strings.ToUpper(hex.EncodeToString(c.Transmit(unhex(t, step.Command)))), "step %d", i)
		}
		// The session that follows uses the vector's session keys and TI.
		var err error
		x.ev2, err = desfire.NewEV2Session(unhex(t, v.SesEnc), unhex(t, v.SesMAC), unhex(t, v.TI), 0)
		require.NoError(t, err)
		require.Equal(t, unhex(t, "0F81"), x.ok(desfire.CmdGetKeySettings, nil, nil, mac))
		require.Equal(t, uint16(1), x.ev2.CmdCtr())
	}
}

func TestConcurrentTransmit(t *testing.T) {
	c := newCard(t, vcard.Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				assert.Equal(t, []byte{0x00, 0x1F, 0x00, 0x91, 0x00}, c.Transmit([]byte{0x90, 0x6E, 0, 0, 0}))
				c.UID()
			}
		})
	}
	wg.Wait()
}
