// Package handovertest builds handover logs for tests and benchmarks: an
// in-process HQ key, store keys, a migrated database and a scenario that
// uses every entry type.
package handovertest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/handover"
	"github.com/loopcard/loopcard/personalize/handover/handoverdb"
)

// Org is the organizer of test logs.
const Org = 7

// Signer returns a signer named name over a new in-process Ed25519 key.
func Signer(t testing.TB, name string) *handover.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	s, err := handover.NewSigner(name, priv)
	require.NoError(t, err)
	return s
}

// StoreSigner returns a new key for store of organizer Org.
func StoreSigner(t testing.TB, store string) *handover.Signer {
	return Signer(t, handover.StoreKeyName(Org, store))
}

// Pool returns a pool on a fresh migrated database (pgtest), closed when
// t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, migrations.Up(ctx, pool))
	return pool
}

// Log opens organizer Org's log on pool with HQ signer hq and a clock that
// advances a millisecond per call.
func Log(t testing.TB, pool *pgxpool.Pool, hq *handover.Signer) *handoverdb.Log {
	t.Helper()
	start := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	var ticks atomic.Int64
	l, err := handoverdb.Open(context.Background(), pool, handoverdb.Config{
		Org: Org, HQ: hq,
		Now: func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * time.Millisecond) },
	})
	require.NoError(t, err)
	return l
}

// Cards returns the card numbers of slots 1..n of batch no.
func Cards(t testing.TB, no int64, n int) []string {
	out := make([]string, n)
	for i := range out {
		id, err := personalize.NewCardID(no, i+1)
		require.NoError(t, err)
		out[i] = id.String()
	}
	return out
}

// Card returns the id of slot of batch no.
func Card(t testing.TB, no int64, slot int) personalize.CardID {
	id, err := personalize.NewCardID(no, slot)
	require.NoError(t, err)
	return id
}

// Stores are the stores of the scenario.
var Stores = []string{"north", "south"}

// Populate appends the scenario to l and returns the store signers: both
// stores enrolled; batch 1 (20 cards) and batch 2 (10 cards) issued; 8 of
// batch 1 to north (received 8), 6 to south (counted 5: a discrepancy), 4
// of batch 2 to north (not received: an open handover); north sells five
// cards in one sealed append and one alone, takes one back, voids one; HQ
// destroys one at HQ; south sells two.
func Populate(t testing.TB, l *handoverdb.Log) map[string]*handover.Signer {
	t.Helper()
	ctx := context.Background()
	keys := map[string]*handover.Signer{}
	for _, s := range Stores {
		keys[s] = StoreSigner(t, s)
		_, err := l.EnrolStore(ctx, s, keys[s].PublicKey())
		require.NoError(t, err)
	}
	must := func(_ handoverdb.Appended, err error) {
		t.Helper()
		require.NoError(t, err)
	}
	must(l.IssueBatch(ctx, 1, "fest", Cards(t, 1, 20)))
	must(l.IssueBatch(ctx, 2, "fest", Cards(t, 2, 10)))
	must(l.HandOver(ctx, 1, "north", 8))
	must(l.HandOver(ctx, 1, "south", 6))
	receive := func(store string, no, count int64) {
		e, err := handover.NewReceipt(keys[store], l.Org(), no, store, count, l.Now())
		require.NoError(t, err)
		must(l.Append(ctx, e))
	}
	receive("north", 1, 8)
	receive("south", 1, 5)
	must(l.HandOver(ctx, 2, "north", 4))
	var sold []handover.CardEvent
	for slot := 1; slot <= 5; slot++ {
		sold = append(sold, handover.CardEvent{Type: handover.TypeCardSold, Card: Card(t, 1, slot), Store: "north"})
	}
	must(l.RecordCards(ctx, keys["north"], sold...))
	must(l.RecordCards(ctx, keys["north"], handover.CardEvent{Type: handover.TypeCardSold, Card: Card(t, 1, 6), Store: "north"}))
	must(l.RecordCards(ctx, keys["north"], handover.CardEvent{Type: handover.TypeCardReturned, Card: Card(t, 1, 2), Store: "north"}))
	must(l.RecordCards(ctx, keys["north"], handover.CardEvent{Type: handover.TypeCardVoided, Card: Card(t, 1, 7), Store: "north", Note: "damaged"}))
	must(l.RecordCards(ctx, l.HQ(), handover.CardEvent{Type: handover.TypeCardDestroyed, Card: Card(t, 1, 20)}))
	must(l.RecordCards(ctx, keys["south"],
		handover.CardEvent{Type: handover.TypeCardSold, Card: Card(t, 1, 9), Store: "south"},
		handover.CardEvent{Type: handover.TypeCardSold, Card: Card(t, 1, 10), Store: "south"}))
	return keys
}
