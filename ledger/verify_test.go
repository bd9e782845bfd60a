package ledger

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"

	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// TestVerifyAllFindsBadSignatures checks that batch verification accepts a
// chunk of good signatures and that a failed chunk pinpoints exactly the bad
// ones, whatever the chunking.
func TestVerifyAllFindsBadSignatures(t *testing.T) {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, "term-a")
	keyA := ed25519.NewKeyFromSeed(seed)
	copy(seed, "term-b")
	keyB := ed25519.NewKeyFromSeed(seed)
	expand := func(k ed25519.PrivateKey) terminalInfo {
		pub := k.Public().(ed25519.PublicKey)
		x, err := voied25519.NewExpandedPublicKey(voied25519.PublicKey(pub))
		require.NoError(t, err)
		return terminalInfo{pub: pub, xpub: x}
	}
	active := map[string]terminalInfo{
		"term-a": expand(keyA),
		"term-b": expand(keyB),
		"term-x": {pub: make(ed25519.PublicKey, 5)}, // a broken stored key
	}
	tests := []struct {
		n, workers int
		bad        map[int]string // index → how it is broken
	}{
		{n: 1, workers: 2},
		{n: 1, workers: 2, bad: map[int]string{0: "sig"}},
		{n: 3, workers: 2, bad: map[int]string{1: "sig"}},
		{n: 10, workers: 1},
		{n: 10, workers: 1, bad: map[int]string{9: "payload"}},
		{n: 200, workers: 2},
		{n: 200, workers: 2, bad: map[int]string{0: "sig", 57: "key", 150: "payload", 199: "badkey"}},
		{n: 200, workers: 8, bad: map[int]string{3: "sig", 4: "sig"}},
		{n: 1100, workers: 2, bad: map[int]string{5: "sig", 700: "key", 1099: "payload"}}, // two chunks
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("n=%d workers=%d bad=%d", tc.n, tc.workers, len(tc.bad)), func(t *testing.T) {
			l := &Ledger{workers: tc.workers}
			txs := make([]*terminaltx.Signed, tc.n)
			for i := range txs {
				term, key := "term-a", keyA
				if i%2 == 1 {
					term, key = "term-b", keyB
				}
				tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: term,
					TerminalSeq: int64(i + 1), Card: []byte{4, 1, 2, 3, 4, 5, 6}, CardSeq: uint32(i + 1), Amount: 1,
					BalanceBefore: 1, BalanceAfter: 0, Merchant: "m", Time: time.Now()}
				switch tc.bad[i] {
				case "key": // signed by the other terminal's key
					if key.Equal(keyA) {
						key = keyB
					} else {
						key = keyA
					}
				case "badkey":
					tx.Terminal = "term-x"
				}
				s, err := terminaltx.Sign(&tx, key)
				require.NoError(t, err)
				raw := s.Bytes()
				switch tc.bad[i] {
				case "sig":
					raw[len(raw)-1] ^= 0x40
				case "payload":
					raw[len(raw)-terminaltx.SignatureSize-1] ^= 1
				}
				p, err := terminaltx.Parse(raw)
				require.NoError(t, err)
				txs[i] = p
			}
			res := make([]Result, tc.n)
			l.verifyAll(txs, active, res)
			for i := range txs {
				if _, bad := tc.bad[i]; bad {
					require.Nil(t, txs[i], "tx %d", i)
					require.Equal(t, Rejected, res[i].Status, "tx %d", i)
					require.ErrorIs(t, res[i].Err, terminaltx.ErrSignature, "tx %d", i)
				} else {
					require.NotNil(t, txs[i], "tx %d", i)
					require.Zero(t, res[i].Status, "tx %d", i)
				}
			}
		})
	}
}
