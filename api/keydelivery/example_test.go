package keydelivery_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/loopcard/loopcard/api/keydelivery"
)

// The terminal keeps its X25519 private key; the server wraps the event
// debit key for the public half it enrolled; the terminal unwraps it and
// refuses it once expired.
func ExampleUnwrap() {
	terminalKey, _ := ecdh.X25519().GenerateKey(rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	b := keydelivery.Binding{Kind: keydelivery.KindSession, Organizer: 1, Terminal: "bar-1", Event: "fest",
		KeyID: "0190e7a0-0000-7000-8000-000000000001", Expires: now.Add(12 * time.Hour)}
	w, err := keydelivery.Wrap(keydelivery.X25519, terminalKey.PublicKey().Bytes(), b, bytes.Repeat([]byte{0x42}, 16))
	if err != nil {
		panic(err)
	}

	key, err := keydelivery.Unwrap(terminalKey, w, now)
	fmt.Println(len(key), err)
	_, err = keydelivery.Unwrap(terminalKey, w, now.Add(13*time.Hour))
	fmt.Println(err)
	// Output:
	// 16 <nil>
	// keydelivery: key expired
}
