package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/terminal"
)

// SimConfig is a load run of simulated terminals.
type SimConfig struct {
	// Org is the organizer (created when missing); 0 means 1.
	Org int64
	// Terminals and Taps: N terminals, each taking Taps payments.
	Terminals, Taps int
	// CardsPerTerminal is how many virtual cards each terminal's customers
	// carry (default 4); they are personalized through the station.
	CardsPerTerminal int
	// Dir holds the terminals' state directories and the label spool.
	Dir string
	// RestartEvery makes every terminal die in the middle of a card's
	// commit at every RestartEvery-th tap and come back from its state
	// directory (0: never).
	RestartEvery int
	// UploadEvery is the uploaders' interval (default 200 ms).
	UploadEvery time.Duration
	// Out receives progress; nil discards it.
	Out io.Writer
	// TapEvery paces each terminal: it waits this long between taps (0:
	// taps as fast as the cards answer, a fraction of a second for all).
	TapEvery time.Duration
	// Midway, when set, is called once, on a goroutine of its own, when
	// half of all taps are done: the failover test kills the database's
	// primary there. The taps go on meanwhile. Out gets a line
	// ("simulate: half of the taps done") at that moment either way.
	Midway func()
}

// SimReport is what a simulation measured.
type SimReport struct {
	Terminals int `json:"terminals"`
	Cards     int `json:"cards"`
	Taps      int `json:"taps"`
	// TapsPerSecond is the taps of all terminals over the tapping time.
	TapsPerSecond float64 `json:"taps_per_second"`
	TapSeconds    float64 `json:"tap_seconds"`
	// DrainSeconds is how long after the last tap the last upload ended.
	DrainSeconds float64 `json:"drain_seconds"`
	// Lag is the upload lag: from a transaction's time on the terminal to
	// its arrival in the ledger, in milliseconds.
	Lag struct {
		P50 float64 `json:"p50_ms"`
		P95 float64 `json:"p95_ms"`
		Max float64 `json:"max_ms"`
	} `json:"upload_lag"`
	// Restarts is how many times a terminal died in the middle of a card's
	// commit and was opened again from its state directory;
	// CrashCommitted how many of those payments the card had committed
	// (the others it had not); Resolved the transactions settled from the
	// cards in the last pass (the others were settled at their card's next
	// tap).
	Restarts       int `json:"restarts"`
	CrashCommitted int `json:"crash_committed"`
	Resolved       int `json:"resolved"`
	// Recorded is the run's transactions in the ledger (it must be Taps +
	// CrashCommitted); Mismatched the cards whose ledger balance differs
	// from the card's own.
	Recorded int `json:"recorded"`
	// Acked is how many transactions the API acknowledged in the end
	// (the terminals marked them done in their queues): every one of them
	// must be among Recorded.
	Acked int `json:"acked"`
	// AckedBeforeMidway is how many transactions the API had acknowledged
	// when half of the taps were done (when Midway was called).
	AckedBeforeMidway int `json:"acked_before_midway"`
	// MaxQueued is the most transactions the terminals held at once,
	// committed by their cards and not yet acknowledged by the API
	// (sampled every 50 ms): how full the queues got while the API or its
	// database was away.
	MaxQueued int `json:"max_queued"`
	// TapsPerSecondBefore and After are the taps per second before half of
	// the taps were done and after Midway returned.
	TapsPerSecondBefore float64 `json:"taps_per_second_before,omitempty"`
	TapsPerSecondAfter  float64 `json:"taps_per_second_after,omitempty"`
	Duplicates          int     `json:"duplicates"`
	Mismatched          int     `json:"cards_mismatched"`
}

// Simulate personalizes cards, loads them with cash, enrols N terminals and
// lets each take Taps payments offline while its uploader sends batches in
// the background; then it waits until everything is uploaded and checks
// every card's balance against the ledger.
func Simulate(ctx context.Context, s *Stack, cfg SimConfig) (*SimReport, error) {
	if cfg.Org == 0 {
		cfg.Org = 1
	}
	if cfg.Terminals <= 0 || cfg.Taps <= 0 {
		return nil, errors.New("sim: simulate needs terminals and taps")
	}
	if cfg.CardsPerTerminal <= 0 {
		cfg.CardsPerTerminal = 4
	}
	if cfg.UploadEvery <= 0 {
		cfg.UploadEvery = 200 * time.Millisecond
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	// Terminal ids are unique per run: two runs in one second must not
	// collide (ids are [a-z0-9._-], at most 64 bytes).
	run := fmt.Sprintf("sim%d", time.Now().UnixNano())
	event, merchant, store := "sim", "sim-bar", "sim-store"
	l := s.Ledger
	if err := l.CreateOrganizer(ctx, cfg.Org, "Simulation"); err != nil {
		return nil, err
	}
	if err := l.AddEvent(ctx, cfg.Org, event, "Simulation", time.Time{}); err != nil {
		return nil, err
	}
	if err := l.AddMerchant(ctx, cfg.Org, merchant, "Simulated bar"); err != nil {
		return nil, err
	}
	if err := l.AddStore(ctx, cfg.Org, store, "Simulated store"); err != nil {
		return nil, err
	}
	hq, err := s.StaffToken(ctx, cfg.Org, api.RoleHQ, "")
	if err != nil {
		return nil, err
	}
	st, err := s.StaffToken(ctx, cfg.Org, api.RoleStore, store)
	if err != nil {
		return nil, err
	}
	n := cfg.Terminals * cfg.CardsPerTerminal
	fmt.Fprintf(out, "simulate: personalizing %d virtual cards through the station ...\n", n)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	is, err := s.IssueCards(ctx, cfg.Org, event, n, cfg.Dir, "", nil)
	if err != nil {
		return nil, err
	}
	load := int64(is.Batch.Layout.Balance.Upper) // as much as a card holds
	for _, c := range is.Cards {
		if _, err := s.CashLoad(ctx, cfg.Org, st, store, c, load); err != nil {
			return nil, err
		}
	}
	rep := &SimReport{Terminals: cfg.Terminals, Cards: n}
	var mu sync.Mutex
	report := func(r terminal.UploadResult, err error) {
		mu.Lock()
		rep.Duplicates += r.Duplicate
		mu.Unlock()
	}
	terms := make([]*simTerminal, cfg.Terminals)
	defer func() {
		for _, st := range terms {
			if st != nil {
				st.close()
			}
		}
	}()
	for i := range terms {
		id := fmt.Sprintf("%s-t%03d", run, i)
		tc := s.TerminalConfig(filepath.Join(cfg.Dir, id), event, merchant)
		t, err := s.AddTerminal(ctx, hq, cfg.Org, id, tc)
		if err != nil {
			return nil, err
		}
		terms[i] = &simTerminal{t: t, cfg: tc, every: cfg.UploadEvery, report: report}
		terms[i].startUploader(ctx)
	}
	fmt.Fprintf(out, "simulate: %d terminals enrolled; each takes %d payments from its %d customers' cards\n", cfg.Terminals, cfg.Taps, cfg.CardsPerTerminal)

	paid := make([]int64, n) // per card
	var tapped atomic.Int64
	half := int64(cfg.Terminals * cfg.Taps / 2)
	var midAt, midDone time.Time
	var midTaps, doneTaps int64
	midway := func() {
		if tapped.Add(1) == half {
			acked := 0
			for _, st := range terms {
				acked += st.counts().Done
			}
			mu.Lock()
			rep.AckedBeforeMidway, midAt, midTaps = acked, time.Now(), half
			mu.Unlock()
			fmt.Fprintf(out, "simulate: half of the taps done, %d transactions acknowledged by the API\n", acked)
			go func() {
				if cfg.Midway != nil {
					cfg.Midway()
				}
				mu.Lock()
				midDone, doneTaps = time.Now(), tapped.Load()
				mu.Unlock()
			}()
		}
	}
	// The queues' fill, sampled until the last upload.
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			q := 0
			for _, st := range terms {
				q += st.counts().Committed
			}
			mu.Lock()
			rep.MaxQueued = max(rep.MaxQueued, q)
			mu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
			<-sampled
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(terms))
	for i, st := range terms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano())))
			mine := is.Cards[i*cfg.CardsPerTerminal : (i+1)*cfg.CardsPerTerminal]
			for tap := 1; tap <= cfg.Taps; tap++ {
				midway()
				if cfg.TapEvery > 0 && tap > 1 {
					select {
					case <-ctx.Done():
						errs[i] = ctx.Err()
						return
					case <-time.After(cfg.TapEvery):
					}
				}
				k := rng.IntN(len(mine))
				amount := int64(1 + rng.IntN(5))
				if cfg.RestartEvery > 0 && tap%cfg.RestartEvery == 0 {
					// The terminal dies in the middle of the card's commit,
					// before or after the card has it, and comes back from
					// its state directory.
					after := rng.IntN(2) == 0
					_, err := st.t.Debit(&crashCard{Card: mine[k].Field(), after: after}, amount)
					if !errors.Is(err, terminal.ErrUncertain) {
						errs[i] = fmt.Errorf("crash debit: %v", err)
						return
					}
					mu.Lock()
					rep.Restarts++
					if after {
						paid[i*cfg.CardsPerTerminal+k] += amount
						rep.CrashCommitted++
					}
					mu.Unlock()
					if err := st.restart(ctx); err != nil {
						errs[i] = err
						return
					}
					continue
				}
				if _, err := st.t.Debit(mine[k].Field(), amount); err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				paid[i*cfg.CardsPerTerminal+k] += amount
				rep.Taps++
				mu.Unlock()
			}
			// Every card is presented once more: what a crash left open is
			// settled from the card.
			for _, c := range mine {
				r, err := st.t.Resolve(c.Field())
				if err != nil {
					errs[i] = err
					return
				}
				mu.Lock()
				rep.Resolved += r
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	rep.TapSeconds = time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rep.TapsPerSecond = float64(rep.Taps) / rep.TapSeconds
	mu.Lock()
	if !midAt.IsZero() {
		rep.TapsPerSecondBefore = float64(midTaps) / midAt.Sub(start).Seconds()
		if !midDone.IsZero() {
			if d := time.Since(midDone).Seconds(); d > 0 && int64(rep.Taps) > doneTaps {
				rep.TapsPerSecondAfter = float64(int64(rep.Taps)-doneTaps) / d
			}
		}
	}
	mu.Unlock()
	fmt.Fprintf(out, "simulate: %d taps in %.2f s (%.0f taps/s), %d terminal crashes and restarts; waiting for the uploads ...\n",
		rep.Taps, rep.TapSeconds, rep.TapsPerSecond, rep.Restarts)
	for _, st := range terms {
		if p := st.t.Queue().Counts().Pending; p > 0 {
			return nil, fmt.Errorf("sim: terminal %s has %d transactions its cards could not settle", st.t.ID(), p)
		}
	}
	drain := time.Now()
	for {
		left := 0
		for _, st := range terms {
			left += st.t.Queue().Counts().Committed
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	rep.DrainSeconds = time.Since(drain).Seconds()
	close(stopSampling)
	<-sampled
	for _, st := range terms {
		st.stopUploader()
		rep.Acked += st.t.Queue().Counts().Done
	}

	lag, err := l.UploadLag(ctx, cfg.Org, run+"-")
	if err != nil {
		return nil, err
	}
	rep.Recorded, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max = lag.Count, lag.P50, lag.P95, lag.Max
	for i, c := range is.Cards {
		b, err := l.CardBalance(ctx, cfg.Org, c.UID)
		if err != nil {
			return nil, err
		}
		if b != load-paid[i] {
			rep.Mismatched++
		}
	}
	fmt.Fprintf(out, "simulate: %d transactions recorded (%d taps + %d committed during a crash), upload lag p50 %.0f ms, p95 %.0f ms, max %.0f ms; %d cards differ from the ledger\n",
		rep.Recorded, rep.Taps, rep.CrashCommitted, rep.Lag.P50, rep.Lag.P95, rep.Lag.Max, rep.Mismatched)
	return rep, nil
}

// simTerminal is one simulated terminal with its background uploader.
type simTerminal struct {
	mu     sync.Mutex // guards t for other goroutines than the terminal's (counts)
	t      *terminal.Terminal
	cfg    terminal.Config
	every  time.Duration
	report func(terminal.UploadResult, error)
	stop   context.CancelFunc
	done   chan struct{}
}

func (s *simTerminal) startUploader(ctx context.Context) {
	uctx, cancel := context.WithCancel(ctx)
	s.stop, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.t.RunUploader(uctx, s.every, terminal.Backoff{}, s.report)
	}()
}

func (s *simTerminal) stopUploader() {
	if s.stop != nil {
		s.stop()
		<-s.done
		s.stop = nil
	}
}

// restart closes the terminal as a crash would leave it (the queue on
// disk as it is) and opens it again.
func (s *simTerminal) restart(ctx context.Context) error {
	s.stopUploader()
	_ = s.t.Close()
	t, err := terminal.Open(s.cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.t = t
	s.mu.Unlock()
	s.startUploader(ctx)
	return nil
}

// counts are the terminal's queue counts, from any goroutine.
func (s *simTerminal) counts() terminal.Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.Queue().Counts()
}

func (s *simTerminal) close() {
	s.stopUploader()
	_ = s.t.Close()
}

// crashCard fails the CommitTransaction exchange as a terminal dying in
// its middle would: after the card has it, or before.
type crashCard struct {
	terminal.Card
	after bool
}

func (c *crashCard) Transmit(apdu []byte) ([]byte, error) {
	if len(apdu) > 1 && apdu[1] == 0xC7 { // CommitTransaction
		if c.after {
			_, _ = c.Card.Transmit(apdu)
		}
		return nil, errors.New("sim: terminal died during the commit")
	}
	return c.Card.Transmit(apdu)
}
