package terminal_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/sim"
)

// TestSimulate drives several terminals at once against the API, with
// their uploaders running, kills each terminal in the middle of a card's
// commit now and then and opens it again from its state directory, and
// checks that the ledger recorded every payment the cards committed once
// and agrees with every card.
func TestSimulate(t *testing.T) {
	w := newWorld(t, 1, "")
	rep, err := sim.Simulate(context.Background(), w.stack, sim.SimConfig{Org: org, Terminals: 4, Taps: 40, CardsPerTerminal: 2, RestartEvery: 7, Dir: t.TempDir()})
	require.NoError(t, err)
	require.Equal(t, 4*5, rep.Restarts)
	require.Equal(t, 160-rep.Restarts, rep.Taps)
	require.LessOrEqual(t, rep.Resolved, rep.Restarts, "crashes are settled at the card's next tap or at the end")
	require.Equal(t, rep.Taps+rep.CrashCommitted, rep.Recorded, "every payment the cards committed, once")
	require.Zero(t, rep.Mismatched)
	require.Positive(t, rep.TapsPerSecond)
	require.GreaterOrEqual(t, rep.Lag.Max, rep.Lag.P95)
	require.GreaterOrEqual(t, rep.Lag.P95, rep.Lag.P50)
	t.Logf("%.0f taps/s, upload lag p50 %.0f ms p95 %.0f ms max %.0f ms", rep.TapsPerSecond, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max)
}
