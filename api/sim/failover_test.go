package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/pgcluster/formation"
	"github.com/loopcard/loopcard/softhsm"
)

// startFormation starts a private pg_auto_failover formation (monitor,
// primary, synchronous secondary) for the test. It fails naming the Debian
// packages when pg_auto_failover is missing (scripts/setup installs them).
func startFormation(t *testing.T) *formation.Formation {
	t.Helper()
	dir, err := os.MkdirTemp("", "lcfm-")
	require.NoError(t, err)
	port, err := formation.FreePort()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := formation.Up(ctx, formation.Options{Dir: dir, Port: port})
	t.Cleanup(func() {
		if f != nil {
			if err := f.Down(); err != nil {
				t.Log(err)
			}
		}
		_ = os.RemoveAll(dir)
	})
	require.NoError(t, err)
	return f
}

// TestFailover runs 8 simulated terminals against the API on a formation,
// with a store client loading cards and a payment provider delivering
// webhooks all the while, loses the primary's machine (SIGKILL to its
// keeper and PostgreSQL) when half of the taps are done, and checks that
// pg_auto_failover promoted the secondary, that every terminal finished
// and uploaded everything, that the ledger recorded every payment the
// cards committed exactly once and agrees with every card, that every load
// and every webhook went through once, and that the ledger's own checks
// pass: no transaction the server acknowledged (and the terminal then
// dropped from its queue) is missing. scripts/bench failover repeats it
// (TestFailoverBench).
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a pg_auto_failover formation")
	}
	f, s := startFailoverStack(t)
	r := failoverRun(t, f, s, 300)
	t.Logf("failover in %s, writes unavailable for %s; taps/s %.0f before, %.0f after",
		r.failover.Round(time.Millisecond), r.window.Round(time.Millisecond), r.before, r.after)
}

// TestFailoverBench is scripts/bench failover: LOOPCARD_FAILOVER_RUNS
// failovers, one after the other, on one formation (the lost node comes
// back as the secondary before the next); it reports the window in which
// writes failed (p50, max) and the taps per second before and after.
func TestFailoverBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LOOPCARD_FAILOVER_RUNS"))
	if n <= 0 {
		t.Skip("set LOOPCARD_FAILOVER_RUNS (scripts/bench failover)")
	}
	f, s := startFailoverStack(t)
	var windows, failovers []time.Duration
	var before, after []float64
	for i := range n {
		// 18 s of taps: the failover is over before they end.
		r := failoverRun(t, f, s, 900)
		windows, failovers = append(windows, r.window), append(failovers, r.failover)
		before, after = append(before, r.before), append(after, r.after)
		fmt.Printf("run %d: failover %s, writes unavailable %s, taps/s %.0f before %.0f after, %d acknowledged before the kill\n",
			i+1, r.failover.Round(time.Millisecond), r.window.Round(time.Millisecond), r.before, r.after, r.acked)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		require.NoError(t, f.Start(r.lost), "the lost node comes back")
		require.NoError(t, f.WaitReady(ctx), "as the secondary")
		cancel()
	}
	slices.Sort(windows)
	slices.Sort(failovers)
	fmt.Printf("failover_runs=%d unavailable_p50_ms=%d unavailable_max_ms=%d promote_p50_ms=%d promote_max_ms=%d taps_per_s_before=%.0f taps_per_s_after=%.0f\n",
		n, windows[n/2].Milliseconds(), windows[n-1].Milliseconds(), failovers[n/2].Milliseconds(), failovers[n-1].Milliseconds(),
		median(before), median(after))
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// startFailoverStack starts a formation and the whole stack on it, with
// webhooks of online payments on.
func startFailoverStack(t *testing.T) (*formation.Formation, *sim.Stack) {
	f := startFormation(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The server's errors go to the test's log, so that a 500 in a
	// failover says what it was.
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	s, err := sim.StartStack(ctx, sim.StackConfig{DataDir: t.TempDir(), HSMURI: softhsm.NewTestToken(t), DatabaseURL: f.URL(),
		Payments: &api.Payments{Provider: "paytest", Secrets: []payment.Secret{webhookSecret}}, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return f, s
}

var webhookSecret = payment.NewSecret([]byte("failover-test-webhook-secret-32b"))

// failoverResult is what one failoverRun measured.
type failoverResult struct {
	lost          string        // the node lost
	failover      time.Duration // from the kill until the monitor has a new primary
	window        time.Duration // from the kill until the first write answered after it
	before, after float64       // taps per second
	acked         int           // transactions acknowledged before the kill
}

// failoverRun is one run of TestFailover on formation f and stack s: taps
// per terminal, 20 ms apart.
func failoverRun(t *testing.T, f *formation.Formation, s *sim.Stack, taps int) failoverResult {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	first, err := f.Primary(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, first)
	secret := webhookSecret
	var killedAt atomic.Int64        // unix ns of the kill
	var firstWriteAfter atomic.Int64 // unix ns of the first webhook answered 200 after it

	// A store loads cash onto cards of its own all through the run, with
	// the store client (top-up, card write, confirmation; each request
	// with its Idempotency-Key).
	const org, event, store = 1, "sim", "sim-store"
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Simulation"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, event, "Simulation", time.Time{}))
	require.NoError(t, s.Ledger.AddStore(ctx, org, store, "Simulated store"))
	storeToken, err := s.StaffToken(ctx, org, api.RoleStore, store)
	require.NoError(t, err)
	loadCards, err := s.IssueCards(ctx, org, event, 3, t.TempDir(), "", nil)
	require.NoError(t, err)
	webCard := loadCards.Cards[2]
	stopLoads := make(chan struct{})
	type loads struct {
		n       int
		balance map[string]int64 // per card, as the card says
		err     error
	}
	loaded := make(chan loads, 1)
	go func() {
		r := loads{balance: map[string]int64{}}
		defer func() { loaded <- r }()
		for i := 0; ; i++ {
			select {
			case <-stopLoads:
				return
			default:
			}
			c := loadCards.Cards[i%2]
			st, err := s.CashLoad(ctx, org, storeToken, store, c, 100)
			if err != nil {
				r.err = fmt.Errorf("load %d: %w", i, err)
				return
			}
			r.n++
			r.balance[string(c.UID)] = st.Balance
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The payment provider delivers a webhook of an online top-up of the
	// third card every 20 ms all through the run, each until it is
	// answered 200, as providers do.
	type hooks struct {
		acked int
		err   error
	}
	hooked := make(chan hooks, 1)
	go func() {
		r := hooks{}
		defer func() { hooked <- r }()
		var stoppedAt time.Time
		for i := 0; ; i++ {
			// Deliveries go on until one sent after the kill is answered,
			// even past the end of the taps (for 30 s at most): a delivery
			// sent just before the kill can be answered only after the
			// failover, and the taps can end soon after it.
			select {
			case <-stopLoads:
				if stoppedAt.IsZero() {
					stoppedAt = time.Now()
				}
				if firstWriteAfter.Load() != 0 || killedAt.Load() == 0 || time.Since(stoppedAt) > 30*time.Second || ctx.Err() != nil {
					return
				}
			default:
			}
			body, _ := json.Marshal(payment.Event{ID: fmt.Sprintf("evt-%X-%d", webCard.UID, i), Type: payment.TypePaymentSucceeded,
				Payment: fmt.Sprintf("pay-%X-%d", webCard.UID, i), Org: org, Card: fmt.Sprintf("%X", webCard.UID), Amount: 500, Currency: "EUR",
				Created: time.Now().Unix()})
			for try := 0; ; try++ {
				if try == 1000 {
					r.err = fmt.Errorf("webhook %d: never answered 200", i)
					return
				}
				sent := time.Now().UnixNano()
				req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/v1/payments/webhook", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(payment.Header, payment.Sign(secret, time.Now(), body))
				res, err := s.HTTP.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						if k := killedAt.Load(); k != 0 && sent > k {
							firstWriteAfter.CompareAndSwap(0, time.Now().UnixNano())
						}
						break
					}
					if res.StatusCode < 500 {
						r.err = fmt.Errorf("webhook %d: %s", i, res.Status)
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.acked++
			time.Sleep(20 * time.Millisecond)
		}
	}()

	type failover struct {
		primary string
		took    time.Duration
		err     error
	}
	done := make(chan failover, 1)
	rep, err := sim.Simulate(ctx, s, sim.SimConfig{Org: 1, Terminals: 8, Taps: taps, CardsPerTerminal: 2, Dir: t.TempDir(),
		// About 6 s of taps, uploaded every 200 ms: the primary is lost
		// after about 3 s, with a part of them acknowledged.
		TapEvery: 20 * time.Millisecond,
		Midway: func() {
			start := time.Now()
			killedAt.Store(start.UnixNano())
			if err := f.Kill(first); err != nil {
				done <- failover{err: err}
				return
			}
			p, err := f.WaitPrimary(ctx, first)
			done <- failover{primary: p, took: time.Since(start), err: err}
		}})
	close(stopLoads)
	require.NoError(t, err, "every terminal finishes")
	ld := <-loaded
	require.NoError(t, ld.err, "every load of the store client goes through")
	wh := <-hooked
	require.NoError(t, wh.err, "every webhook is answered 200 in the end")
	var fo failover
	select {
	case fo = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the primary was never killed")
	}
	require.NoError(t, fo.err)
	require.NotEqual(t, first, fo.primary, "the secondary was promoted")
	t.Logf("failover %s -> %s in %s; %d taps at %.0f taps/s, %d acknowledged before the kill, upload lag max %.0f ms, drain %.1f s",
		first, fo.primary, fo.took.Round(time.Millisecond), rep.Taps, rep.TapsPerSecond, rep.AckedBeforeMidway, rep.Lag.Max, rep.DrainSeconds)

	require.Equal(t, 8*taps, rep.Taps)
	require.Positive(t, rep.AckedBeforeMidway, "the primary was lost with transactions acknowledged")
	require.Equal(t, rep.Taps, rep.Recorded, "every payment the cards committed, once, on the new primary")
	require.Zero(t, rep.Mismatched, "the ledger equals the cards")
	require.NoError(t, s.Ledger.Verify(ctx), "the ledger's invariants hold")
	t.Logf("the store loaded %d times", ld.n)

	// /healthz: the database's role, and a recent write.
	res, err := s.HTTP.Get(s.URL + "/healthz")
	require.NoError(t, err)
	var h struct {
		Status         string   `json:"status"`
		Role           string   `json:"db_role"`
		SinceLastWrite *float64 `json:"seconds_since_last_write"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&h))
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "primary", h.Role)
	require.NotNil(t, h.SinceLastWrite)
	require.Less(t, *h.SinceLastWrite, 60.0)
	for _, c := range loadCards.Cards[:2] {
		b, err := s.Ledger.CardBalance(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, ld.balance[string(c.UID)], b, "each load once: the ledger equals the card")
	}
	pending, err := s.Ledger.PendingLoads(ctx, org, loadCards.Cards[0].UID)
	require.NoError(t, err)
	require.Empty(t, pending, "every load confirmed")
	online, err := s.Ledger.PendingLoads(ctx, org, webCard.UID)
	require.NoError(t, err)
	t.Logf("%d webhooks delivered", wh.acked)
	require.Positive(t, wh.acked)
	require.Len(t, online, wh.acked, "each webhook answered 200 is one pending load, once")
	w := firstWriteAfter.Load()
	require.NotZero(t, w, "a write was answered after the kill")
	return failoverResult{lost: first, failover: fo.took, window: time.Duration(w - killedAt.Load()),
		before: rep.TapsPerSecondBefore, after: rep.TapsPerSecondAfter, acked: rep.AckedBeforeMidway}
}
