package vcard_test

import (
	"fmt"

	"github.com/loopcard/loopcard/personalize/vcard"
)

// A blank card answers the reader's GET UID and the first frame of the
// native GetVersion wrapped in ISO 7816-4.
func Example() {
	card, err := vcard.New(vcard.Options{UID: []byte{0x04, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("ATR     % X\n", card.ATR())
	fmt.Printf("GET UID % X\n", card.Transmit([]byte{0xFF, 0xCA, 0x00, 0x00, 0x00}))
	fmt.Printf("version % X\n", card.Transmit([]byte{0x90, 0x60, 0x00, 0x00, 0x00}))
	// Output:
	// ATR     3B 81 80 01 80 80
	// GET UID 04 01 02 03 04 05 06 90 00
	// version 04 01 01 12 00 1A 05 91 AF
}
