package batch_test

import (
	"context"
	"testing"
	"time"

	"github.com/loopcard/loopcard/personalize"
)

// BenchmarkReserveFinish measures the two database steps of a card: the
// slot reservation and the record of the finished card.
func BenchmarkReserveFinish(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	bt, err := s.Create(ctx, 1, "ev", max(b.N, 1), personalize.DefaultLayout())
	if err != nil {
		b.Fatal(err)
	}
	var reserve, finish time.Duration
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		r, err := s.Reserve(ctx, 1, bt.No, uid(i))
		if err != nil {
			b.Fatal(err)
		}
		reserve += time.Since(t)
		t = time.Now()
		if _, err := s.Finish(ctx, 1, bt.No, r.Slot, uid(i), finished(i)); err != nil {
			b.Fatal(err)
		}
		finish += time.Since(t)
	}
	b.ReportMetric(float64(reserve.Microseconds())/float64(b.N), "µs/reserve")
	b.ReportMetric(float64(finish.Microseconds())/float64(b.N), "µs/finish")
}
