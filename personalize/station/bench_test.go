package station_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/station"
)

// BenchmarkStation runs blank in-process virtual cards through the whole
// station path (recognition, key derivation in SoftHSM2, personalization,
// read-back, token, PIN and PVV, label spool with fsync, two commits in
// PostgreSQL) and reports cards per second, milliseconds per card and the
// share of the time spent in the HSM, the card exchanges, the database and
// the synced label spool.
//
//	go test -run XXX -bench Station -benchtime 200x ./personalize/station
func BenchmarkStation(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	bt := e.newBatch(b, b.N)
	s, _ := e.station(b, bt, spoolPath(b), nil)
	cards := make([]*link, b.N)
	for i := range cards {
		cards[i] = &link{vc: newCard(b, i)}
		cards[i].vc.PowerOn()
	}
	b.ResetTimer()
	for i := range b.N {
		res, err := s.Personalize(ctx, cards[i])
		if err != nil || res.Outcome != station.Personalized {
			require.NoError(b, err)
		}
	}
	b.StopTimer()
	t := s.Times()
	per := func(d float64) float64 { return d / float64(t.Cards) / 1e6 }
	total := float64(t.Total)
	b.ReportMetric(float64(t.Cards)/b.Elapsed().Seconds(), "cards/s")
	b.ReportMetric(per(total), "ms/card")
	b.ReportMetric(per(total-float64(t.DB)-float64(t.Spool)), "ms/card-without-db-and-fsync")
	b.ReportMetric(100*float64(t.HSM)/total, "%hsm")
	b.ReportMetric(100*float64(t.Card)/total, "%card")
	b.ReportMetric(100*float64(t.DB)/total, "%db")
	b.ReportMetric(100*float64(t.Spool)/total, "%spool")
	b.ReportMetric(0, "ns/op")
}
