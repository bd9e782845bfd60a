package runbook

import (
	"context"
	"os"
	"strconv"
)

// storeDir is a store's own directory: its key file, token and client
// state, which never leave the store.
func (r *runner) storeDir(store string, file ...string) string {
	return r.path(append([]string{"stores", store}, file...)...)
}

func (r *runner) handover(ctx context.Context) error {
	batch := strconv.FormatInt(r.batch, 10)
	if _, err := r.loopcard(ctx, append([]string{"handover", "issue", "--batch", batch}, r.orgFlag()...)...); err != nil {
		return err
	}
	r.say("   batch %s issued in the custody log (count and Merkle root of its card numbers), signed by hq-sign", batch)
	// Each store gets a run of cards in slot order (--first): the custody
	// log then knows which store holds each card, and a store cannot sell
	// the other's.
	half := len(r.cards) / 2
	r.storeCards[StoreN], r.storeCards[StoreS] = r.cards[:half], r.cards[half:]
	for _, st := range []string{StoreN, StoreS} {
		if err := os.MkdirAll(r.storeDir(st), 0o700); err != nil {
			return err
		}
		// At the store: its own key; HQ gets only the public half.
		pub, err := r.loopcard(ctx, append([]string{"store", "keygen", "--store", st, "--key-file", r.storeDir(st, "store.key")}, r.orgFlag()...)...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(r.storeDir(st, "store.pub"), []byte(pub), 0o644); err != nil {
			return err
		}
		// At HQ: enrol the key, hand the cards over, issue the store's token.
		if _, err := r.loopcard(ctx, append([]string{"store", "enrol", "--store", st, "--public-key", r.storeDir(st, "store.pub")}, r.orgFlag()...)...); err != nil {
			return err
		}
		n := strconv.Itoa(len(r.storeCards[st]))
		if _, err := r.loopcard(ctx, append([]string{"handover", "send", "--batch", batch, "--store", st, "--count", n,
			"--first", r.storeCards[st][0].number}, r.orgFlag()...)...); err != nil {
			return err
		}
		if err := r.issueToken(ctx, r.storeDir(st, "token"), "--role", "store", "--store", st); err != nil {
			return err
		}
		// At the store: count the cards, sign the receipt, send it.
		if _, err := r.loopcard(ctx, append([]string{"handover", "receive", "--batch", batch, "--store", st, "--count", n,
			"--key-file", r.storeDir(st, "store.key"), "--token-file", r.storeDir(st, "token")}, r.orgFlag()...)...); err != nil {
			return err
		}
		r.sum.Stores = append(r.sum.Stores, StoreDay{Store: st})
		r.say("   %s: %s cards (%s on) handed over by HQ; receipt counted and signed with the store's own key, sent through the API", st, n, r.storeCards[st][0].number)
	}
	return nil
}
