package batch_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t testing.TB) *batch.Batches {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	require.NoError(t, migrations.Up(ctx, pool))
	return batch.NewBatches(pool)
}

func uid(i int) []byte { return []byte{0x04, 0xAA, 0xBB, 0xCC, 0x00, byte(i >> 8), byte(i)} }

func finished(i int) batch.Finished {
	h := sha256.Sum256([]byte(fmt.Sprint("token", i)))
	return batch.Finished{
		KeyVersions: map[string]int{"picc-master": 1, "app-master": 1},
		TokenHash:   h[:], PVV: bytes.Repeat([]byte{byte(i)}, 32), PVVKeyVersion: 1,
	}
}

func TestCreateListGet(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	layout := personalize.DefaultLayout()
	layout.Balance.Upper = 5000

	b1, err := s.Create(ctx, 7, "summer-2026", 3, layout)
	require.NoError(t, err)
	require.Equal(t, int64(1), b1.No)
	require.Equal(t, batch.StatusOpen, b1.Status)
	require.Equal(t, layout, b1.Layout, "the layout is kept with the batch")
	b2, err := s.Create(ctx, 7, "summer-2026", 5, personalize.DefaultLayout())
	require.NoError(t, err)
	require.Equal(t, int64(2), b2.No)
	other, err := s.Create(ctx, 8, "x", 1, personalize.DefaultLayout())
	require.NoError(t, err)
	require.Equal(t, int64(1), other.No, "batch numbers count per organizer")

	list, err := s.List(ctx, 7)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, int64(2), list[0].No)

	_, err = s.Get(ctx, 7, 9)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = s.Get(ctx, 9, 1)
	require.ErrorIs(t, err, batch.ErrNotFound)

	bad := personalize.DefaultLayout()
	bad.SystemID = "x"
	for name, f := range map[string]func() error{
		"count 0":     func() error { _, err := s.Create(ctx, 7, "e", 0, layout); return err },
		"count big":   func() error { _, err := s.Create(ctx, 7, "e", personalize.SlotsPerBatch, layout); return err },
		"bad event":   func() error { _, err := s.Create(ctx, 7, "a b", 1, layout); return err },
		"bad org":     func() error { _, err := s.Create(ctx, 0, "e", 1, layout); return err },
		"bad layout":  func() error { _, err := s.Create(ctx, 7, "e", 1, bad); return err },
		"parse batch": func() error { _, err := batch.ParseNo("0"); return err },
	} {
		require.ErrorIs(t, f(), batch.ErrInvalid, name)
	}
}

func TestReserveFinish(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, err := s.Create(ctx, 7, "ev", 3, personalize.DefaultLayout())
	require.NoError(t, err)
	other, err := s.Create(ctx, 7, "ev", 1, personalize.DefaultLayout())
	require.NoError(t, err)

	r1, err := s.Reserve(ctx, 7, b.No, uid(1))
	require.NoError(t, err)
	require.Equal(t, 1, r1.Slot)
	require.Equal(t, "1-00001", r1.CardID.String())
	again, err := s.Reserve(ctx, 7, b.No, uid(1))
	require.NoError(t, err)
	require.Equal(t, r1, again, "a card presented again keeps its slot")

	r2, err := s.Reserve(ctx, 7, b.No, uid(2))
	require.NoError(t, err)
	require.Equal(t, 2, r2.Slot)

	_, err = s.Reserve(ctx, 7, other.No, uid(1))
	var ob *batch.OtherBatchError
	require.ErrorAs(t, err, &ob)
	require.Equal(t, b.No, ob.BatchNo)
	require.False(t, ob.Done)
	// The refused reservation released the other batch's lock.
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ro, err := s.Reserve(tctx, 7, other.No, uid(50))
	require.NoError(t, err)
	require.Equal(t, 1, ro.Slot)
	_, err = s.Reserve(tctx, 7, other.No, uid(51))
	require.NoError(t, err, "the oldest reservation is taken over")

	p, err := s.Finish(ctx, 7, b.No, 1, uid(1), finished(1))
	require.NoError(t, err)
	require.Equal(t, batch.Progress{Done: 1, Count: 3}, p)
	_, err = s.Finish(ctx, 7, b.No, 1, uid(1), finished(1))
	require.ErrorIs(t, err, batch.ErrNotReserved, "a card is finished once")
	_, err = s.Finish(ctx, 7, b.No, 2, uid(9), finished(2))
	require.ErrorIs(t, err, batch.ErrNotReserved, "only the reserving card finishes a slot")
	_, err = s.Finish(ctx, 7, b.No, 2, uid(2), batch.Finished{})
	require.ErrorIs(t, err, batch.ErrInvalid)

	done, err := s.Reserve(ctx, 7, b.No, uid(1))
	require.NoError(t, err)
	require.True(t, done.Done)

	r3, err := s.Reserve(ctx, 7, b.No, uid(3))
	require.NoError(t, err)
	require.Equal(t, 3, r3.Slot)
	// No free slot: the oldest reservation (card 2, never finished) is taken over.
	r4, err := s.Reserve(ctx, 7, b.No, uid(4))
	require.NoError(t, err)
	require.Equal(t, 2, r4.Slot)
	require.True(t, r4.Reassigned)
	_, err = s.Finish(ctx, 7, b.No, 2, uid(2), finished(2))
	require.ErrorIs(t, err, batch.ErrNotReserved, "the card that lost its slot cannot finish it")

	p, err = s.Finish(ctx, 7, b.No, 2, uid(4), finished(4))
	require.NoError(t, err)
	require.False(t, p.Complete)
	p, err = s.Finish(ctx, 7, b.No, 3, uid(3), finished(3))
	require.NoError(t, err)
	require.Equal(t, batch.Progress{Done: 3, Count: 3, Complete: true}, p)

	_, err = s.Reserve(ctx, 7, b.No, uid(5))
	require.ErrorIs(t, err, batch.ErrFull)
	_, err = s.Reserve(ctx, 7, 99, uid(5))
	require.ErrorIs(t, err, batch.ErrNotFound)
	// No lock or transaction was left behind by the refusals.
	_, err = s.Reserve(tctx, 7, b.No, uid(6))
	require.ErrorIs(t, err, batch.ErrFull)
	_, err = s.PinKeyVersions(tctx, 7, b.No, map[string]int{"pin": 1})
	require.NoError(t, err)

	got, err := s.Get(ctx, 7, b.No)
	require.NoError(t, err)
	require.Equal(t, batch.StatusComplete, got.Status)
	require.Equal(t, 3, got.Done)
	require.NotNil(t, got.CompletedAt)
	cards, err := s.Cards(ctx, 7, b.No)
	require.NoError(t, err)
	require.Len(t, cards, 3)
	require.Equal(t, "1-00002", cards[1].Number)
	require.Equal(t, batch.HexBytes(uid(4)), cards[1].UID)
	require.Equal(t, map[string]int{"picc-master": 1, "app-master": 1}, cards[1].KeyVersions)
}

func TestPinKeyVersions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, err := s.Create(ctx, 7, "ev", 2, personalize.DefaultLayout())
	require.NoError(t, err)
	require.Nil(t, b.KeyVersions)
	first := map[string]int{"picc-master": 1, "app-debit": 2}
	got, err := s.PinKeyVersions(ctx, 7, b.No, first)
	require.NoError(t, err)
	require.Equal(t, first, got)
	// A later station, after a rotation, gets the versions pinned first.
	got, err = s.PinKeyVersions(ctx, 7, b.No, map[string]int{"picc-master": 2, "app-debit": 3})
	require.NoError(t, err)
	require.Equal(t, first, got)
	b, err = s.Get(ctx, 7, b.No)
	require.NoError(t, err)
	require.Equal(t, first, b.KeyVersions)
	_, err = s.PinKeyVersions(ctx, 7, 99, first)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = s.PinKeyVersions(ctx, 7, b.No, nil)
	require.ErrorIs(t, err, batch.ErrInvalid)
}

func TestReserveConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 20
	b, err := s.Create(ctx, 1, "ev", n, personalize.DefaultLayout())
	require.NoError(t, err)
	var wg sync.WaitGroup
	slots := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, err := s.Reserve(ctx, 1, b.No, uid(i))
			slots[i], errs[i] = r.Slot, err
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range n {
		require.NoError(t, errs[i])
		require.False(t, seen[slots[i]], "slot %d given twice", slots[i])
		seen[slots[i]] = true
	}
	require.Len(t, seen, n)

	// Finishing concurrently: exactly one Finish completes the batch.
	complete := make([]bool, n)
	for i := range n {
		wg.Go(func() {
			p, err := s.Finish(ctx, 1, b.No, slots[i], uid(i), finished(i))
			complete[i], errs[i] = p.Complete, err
		})
	}
	wg.Wait()
	completions := 0
	for i := range n {
		require.NoError(t, errs[i])
		if complete[i] {
			completions++
		}
	}
	require.Equal(t, 1, completions)
	got, err := s.Get(ctx, 1, b.No)
	require.NoError(t, err)
	require.Equal(t, batch.StatusComplete, got.Status)
}
