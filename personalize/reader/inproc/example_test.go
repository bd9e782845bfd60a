package inproc_test

import (
	"context"
	"fmt"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/reader/inproc"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// A station loop over an in-process reader: two cards are tapped one after
// the other, and the holder takes each away once it is done.
func Example() {
	r := inproc.New(inproc.Options{Name: "desk", HolderLeaves: true})
	defer r.Close()
	for _, last := range []byte{0x01, 0x02} {
		c, err := vcard.New(vcard.Options{UID: []byte{0x04, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, last}})
		if err != nil {
			panic(err)
		}
		r.Present(c)
	}
	ctx := context.Background()
	for range 2 {
		card, err := r.WaitForCard(ctx)
		if err != nil {
			panic(err)
		}
		v, err := desfire.New(card).GetVersion()
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: card % X, hardware %02X.%02X\n", r.Name(), v.UID, v.Hardware[3], v.Hardware[4])
		card.Close()
		if err := card.WaitForRemoval(ctx); err != nil {
			panic(err)
		}
	}
	// Output:
	// desk: card 04 A0 B0 C0 D0 E0 01, hardware 12.00
	// desk: card 04 A0 B0 C0 D0 E0 02, hardware 12.00
}
