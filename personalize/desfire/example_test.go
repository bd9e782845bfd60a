package desfire_test

import (
	"bytes"
	"fmt"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// Example takes a factory-fresh card (DES PICC master key of zeros) to an
// AES PICC master key, as the station does with every new card, and opens an
// EV2 session with the new key.
func Example() {
	vc, err := vcard.New(vcard.Options{UID: []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66}})
	if err != nil {
		panic(err)
	}
	card := desfire.New(cardLink{vc})

	piccKey, _ := desfire.NewAESKey(bytes.Repeat([]byte{0x5C}, 16), 1)
	if err := card.AuthenticateLegacy(0, desfire.DefaultDESKey()); err != nil {
		panic(err)
	}
	if err := card.ChangeKey(0, piccKey, desfire.Key{}); err != nil {
		panic(err)
	}
	if err := card.AuthenticateEV2First(0, piccKey); err != nil {
		panic(err)
	}
	ks, _ := card.GetKeySettings()
	uid, _ := card.GetCardUID()
	fmt.Printf("PICC master key: %v, UID % X\n", ks.KeyType, uid)
	// Output: PICC master key: AES, UID 04 11 22 33 44 55 66
}
