package terminal_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/demo"
)

// TestSimulate drives several terminals at once against the API, with
// their uploaders running, and checks that the ledger recorded every tap
// once and agrees with every card.
func TestSimulate(t *testing.T) {
	w := newWorld(t, 1, "")
	rep, err := demo.Simulate(context.Background(), w.stack, demo.SimConfig{Org: org, Terminals: 4, Taps: 40, CardsPerTerminal: 2, Dir: t.TempDir()})
	require.NoError(t, err)
	require.Equal(t, 160, rep.Taps)
	require.Equal(t, rep.Taps, rep.Recorded, "every tap recorded once")
	require.Zero(t, rep.Mismatched)
	require.Positive(t, rep.TapsPerSecond)
	require.GreaterOrEqual(t, rep.Lag.Max, rep.Lag.P95)
	require.GreaterOrEqual(t, rep.Lag.P95, rep.Lag.P50)
	t.Logf("%.0f taps/s, upload lag p50 %.0f ms p95 %.0f ms max %.0f ms", rep.TapsPerSecond, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max)
}
