package handover_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/handover"
)

// Several card events are signed once: the entries go unsigned, followed
// by a seal over their leaf hashes that the store signs.
func ExampleSignCardEvents() {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)) // a store's key; never a zero seed in real life
	store, err := handover.NewSigner(handover.StoreKeyName(1, "north"), priv)
	if err != nil {
		panic(err)
	}
	var events []handover.CardEvent
	for slot := 1; slot <= 3; slot++ {
		id, _ := personalize.NewCardID(4, slot)
		events = append(events, handover.CardEvent{Type: handover.TypeCardSold, Card: id, Store: "north"})
	}
	entries, err := handover.SignCardEvents(store, 1, time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), events)
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		fmt.Printf("%-9s %-8s signed=%v\n", e.Type, e.Card, e.Sig != "")
	}
	b, _ := entries[0].Marshal()
	fmt.Println(string(b))
	// Output:
	// card_sold 4-00001  signed=false
	// card_sold 4-00002  signed=false
	// card_sold 4-00003  signed=false
	// seal               signed=true
	// {"v":1,"type":"card_sold","org":1,"at":"2026-07-01T12:00:00Z","store":"north","card":"4-00001","signer":"loopcard-org1-store-north+1d091cba"}
}
