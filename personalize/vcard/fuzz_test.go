package vcard_test

import (
	"slices"
	"testing"

	"github.com/loopcard/loopcard/personalize/vcard"
)

// fuzzSetup is a card with a free application and one file of each kind, so
// that fuzzed commands reach the file system without authentication.
var fuzzSetup = [][]byte{
	apdu(0xCA, []byte{0x01, 0x00, 0x00, 0xEF, 0x84}),                                                    // CreateApplication 000001, free
	apdu(0x5A, []byte{0x01, 0x00, 0x00}),                                                                // SelectApplication
	apdu(0xCD, []byte{0x00, 0x00, 0xEE, 0xEE, 0x40, 0x00, 0x00}),                                        // std 64
	apdu(0xCB, []byte{0x01, 0x03, 0xEE, 0xEE, 0x20, 0x00, 0x00}),                                        // backup 32
	apdu(0xCC, slices.Concat([]byte{0x02, 0x00, 0xEE, 0xEE}, le32(0), le32(1000), le32(10), []byte{1})), // value
	apdu(0xC0, []byte{0x03, 0x01, 0xEE, 0xEE, 0x10, 0x00, 0x00, 0x03, 0x00, 0x00}),                      // cyclic 16x3
	apdu(0xC1, []byte{0x04, 0x00, 0x12, 0x34, 0x08, 0x00, 0x00, 0x02, 0x00, 0x00}),                      // linear 8x2
}

// splitAPDUs cuts fuzz input into APDUs: a length byte, then that many bytes.
func splitAPDUs(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(int(b[0]), len(b)-1)
		out = append(out, b[1:1+n])
		b = b[1+n:]
	}
	return out
}

func joinAPDUs(apdus ...[]byte) []byte {
	var out []byte
	for _, a := range apdus {
		out = append(out, byte(len(a)))
		out = append(out, a...)
	}
	return out
}

// FuzzTransmit feeds sequences of APDUs to a prepared card. The card must
// never fail internally (6F 00 is its answer to a recovered panic) and must
// always answer with a status word.
func FuzzTransmit(f *testing.F) {
	for _, seed := range [][]byte{
		joinAPDUs(unhex(f, "FFCA000000"), unhex(f, "9060000000"), unhex(f, "90AF000000"), unhex(f, "90AF000000")),
		joinAPDUs(apdu(0x3D, slices.Concat(rwHdr(0, 0, 60), make([]byte, 48))), apdu(0xAF, make([]byte, 12)), apdu(0xBD, rwHdr(0, 0, 0)), apdu(0xAF, nil)),
		joinAPDUs(apdu(0x0C, slices.Concat([]byte{2}, le32(100))), apdu(0xDC, slices.Concat([]byte{2}, le32(30))), apdu(0xC7, nil), apdu(0x1C, slices.Concat([]byte{2}, le32(30))), apdu(0x6C, []byte{2})),
		joinAPDUs(apdu(0x3B, slices.Concat(rwHdr(3, 0, 16), make([]byte, 16))), apdu(0xC7, nil), apdu(0xBB, rwHdr(3, 0, 0)), apdu(0xA7, nil)),
		joinAPDUs(apdu(0x3D, slices.Concat(rwHdr(1, 4, 4), []byte{1, 2, 3, 4})), apdu(0xC7, nil), apdu(0xBD, rwHdr(1, 0, 8))),
		joinAPDUs(apdu(0x71, []byte{0x00, 0x00}), apdu(0xAF, make([]byte, 32))),
		joinAPDUs(apdu(0xAA, []byte{0x01}), apdu(0xAF, make([]byte, 32))),
		joinAPDUs(apdu(0x0A, []byte{0x00}), apdu(0xAF, make([]byte, 16))),
		joinAPDUs(apdu(0x1A, []byte{0x00}), apdu(0xAF, make([]byte, 16))),
		joinAPDUs(apdu(0xF5, []byte{2}), apdu(0x6F, nil), apdu(0x45, nil), apdu(0x64, []byte{0}), apdu(0x6E, nil)),
		joinAPDUs(apdu(0x5F, []byte{4, 0x00, 0xEE, 0xEE}), apdu(0xDF, []byte{4}), apdu(0xDA, []byte{1, 0, 0}), apdu(0x5A, []byte{0, 0, 0})),
		joinAPDUs(apdu(0xC4, append([]byte{0}, make([]byte, 32)...)), apdu(0x54, []byte{0x0F}), apdu(0x5C, []byte{0, 2})),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := vcard.New(vcard.Options{UID: testUID, Rand: &fixedRand{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range fuzzSetup {
			if r := c.Transmit(a); r[len(r)-1] != 0 {
				t.Fatalf("setup % X: % X", a, r)
			}
		}
		for _, a := range splitAPDUs(in) {
			r := c.Transmit(a)
			if len(r) < 2 {
				t.Fatalf("no status word for % X", a)
			}
			if r[len(r)-2] == 0x6F {
				t.Fatalf("internal error for % X", a)
			}
			if len(r) > 2 && r[len(r)-2] != 0x91 && r[len(r)-2] != 0x90 {
				t.Fatalf("data with status % X", r[len(r)-2:])
			}
		}
	})
}
