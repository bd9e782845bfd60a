package handover_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/handover"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

// BenchmarkAppend measures appends through PostgreSQL (durable commits),
// each with its signed checkpoint: one HQ entry per append, and 100 card
// sales sealed in one append.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	pool := ht.Pool(b)
	hq := ht.Signer(b, handover.DefaultOrigin(ht.Org))
	l := ht.Log(b, pool, hq)
	north := ht.StoreSigner(b, "north")
	_, err := l.EnrolStore(ctx, "north", north.PublicKey())
	require.NoError(b, err)

	b.Run("one-entry", func(b *testing.B) {
		no := int64(0)
		for b.Loop() {
			no++
			_, err := l.HandOver(ctx, 1, "north", no)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("100-sealed", func(b *testing.B) {
		no := int64(1000)
		for b.Loop() {
			no++
			evs := make([]handover.CardEvent, 100)
			for i := range evs {
				evs[i] = handover.CardEvent{Type: handover.TypeCardSold, Card: ht.Card(b, no, i+1), Store: "north"}
			}
			_, err := l.RecordCards(ctx, north, evs...)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		b.ReportMetric(float64(101*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
