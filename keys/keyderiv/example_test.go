package keyderiv_test

import (
	"encoding/hex"
	"fmt"

	"github.com/loopcard/loopcard/keys/keyderiv"
)

// The AN10922 example of NXP's application note, with the pure-Go reference:
// holders of an event debit key derive a card's key 1 this way.
func ExampleAN10922() {
	master, _ := hex.DecodeString("00112233445566778899AABBCCDDEEFF")
	uid, _ := hex.DecodeString("04782E21801D80")
	aid, _ := hex.DecodeString("3042F5")
	base, _ := keyderiv.NewAESKey(master)
	m, err := keyderiv.DiversificationInput(uid, aid, []byte("NXP Abu"))
	if err != nil {
		fmt.Println(err)
		return
	}
	card, _ := keyderiv.AN10922(base, m)
	fmt.Printf("%X\n", card.Bytes())
	fmt.Println("KCV", card.KCV())
	// Output:
	// A8DD63A3B89D54B37CA802473FDA9175
	// KCV 5B298C
}

// An input too short for the HSM to compute AN10922 exactly is refused.
func ExampleDiversificationInput() {
	uid, _ := hex.DecodeString("04782E21801D80")
	_, err := keyderiv.DiversificationInput(uid, []byte{0, 0, 0}, []byte("LC"))
	fmt.Println(err)
	// Output:
	// AN10922 input cannot be diversified in the HSM: M is 12 bytes; the HSM's CMAC equals AN10922 only from 16 bytes: use a longer system identifier (the system identifier must be 6 to 21 bytes)
}
