package handover_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/handover"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

// BenchmarkAppend measures appends through PostgreSQL (durable commits),
// each with its signed checkpoint and count checks: one HQ entry per
// append, and 100 card events sealed in one append (at most 999 appends).
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	pool := ht.Pool(b)
	hq := ht.Signer(b, handover.DefaultOrigin(ht.Org))
	l := ht.Log(b, pool, hq)
	north := ht.StoreSigner(b, "north")
	_, err := l.EnrolStore(ctx, "north", north.PublicKey())
	require.NoError(b, err)

	// HQ holds a big batch: one card handed over per append, 100 voided
	// per sealed append.
	_, err = l.IssueBatch(ctx, 1, "fest", ht.Cards(b, 1, 99999))
	require.NoError(b, err)
	b.Run("one-entry", func(b *testing.B) {
		for b.Loop() {
			_, err := l.HandOver(ctx, 1, "north", 1)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("100-sealed", func(b *testing.B) {
		slot := 0
		for b.Loop() {
			evs := make([]handover.CardEvent, 100)
			for i := range evs {
				slot++
				evs[i] = handover.CardEvent{Type: handover.TypeCardVoided, Card: ht.Card(b, 1, slot)}
			}
			_, err := l.RecordCards(ctx, hq, evs...)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		b.ReportMetric(float64(101*b.N)/b.Elapsed().Seconds(), "entries/s")
	})
}
