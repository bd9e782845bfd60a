// Package runbook runs a whole event with Loopcard's own commands, as
// docs/run-an-event.md tells an operator to: every step is a `loopcard`
// command run as its own process (the API server, a private pcscd with a
// vpcd reader, virtual cards, the station, the store client, two terminals)
// or a request to the API's public routes, as a cardholder's browser makes
// it. `loopcard demo` is its front end, and the end-to-end test runs it on
// the built binary.
//
// Nothing here reaches into a package's internals: what the run cannot do
// through a command or a route, an operator could not do either.
package runbook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Config is what Run needs.
type Config struct {
	// Exe is the loopcard binary every step runs.
	Exe string
	// DataDir is the run's own data directory: the embedded HSM token and
	// database (unless HSMURI or DatabaseURL are given), the reader, the
	// cards, the stores' and terminals' state, and the outputs. It is
	// replaced on every run.
	DataDir string
	// HSMURI and DatabaseURL, when set, are passed to every command as
	// LOOPCARD_HSM and LOOPCARD_DATABASE_URL.
	HSMURI, DatabaseURL string
	// Cards is the batch size (default 10, at least 6); Taps the payments
	// each of the two terminals takes (default 4).
	Cards, Taps int
	// Seed makes the run's choices repeatable; 0: a new one.
	Seed uint64
	// Out receives the commentary: each step, each command as typed;
	// nil discards it. Log receives the commands' own logs (stderr).
	Out, Log io.Writer
	// Quiet leaves the commands out of the commentary.
	Quiet bool
	// RequireBrowser fails the run when Chromium cannot open the card
	// page; without it that step is noted and skipped.
	RequireBrowser bool
}

// The event the run sets up.
const (
	Event   = "summer-fest"
	Bar     = "bar"
	Food    = "food"
	StoreN  = "store-north"
	StoreS  = "store-south"
	Deposit = 200  // the card deposit each store takes
	Credit  = 2000 // the cash credit written onto each card sold
	TopUp   = 1000 // the cardholder's online top-up: one of the card page's buttons
)

type runner struct {
	cfg   Config
	out   io.Writer
	log   io.Writer
	dir   string   // where commands run and write their files (cfg.DataDir)
	env   []string // extra environment of every command
	rng   *rand.Rand
	procs []*proc
	sum   *Summary
	step  time.Time

	org         int64
	apiURL      string
	caFile      string
	readerPort  int
	readers     [2]string // the vpcd slots as commands are given them: 0 for the station, stores and bar; 1 for food
	readerNames [2]string // their full PC/SC names
	batch       int64
	cards       []*card
	storeCards  map[string][]*card
	bar, food   *terminalRun
	victim      *card // cloned
	online      *card // topped up online
}

// card is one card of the batch: its vcard state file and its label.
type card struct {
	state  string // vcard state file
	number string // printed card number
	uid    string // hex UID
	token  string // QR token, from the label file
	pin    string // PIN, from the label file

	sold, cloned, toppedUp bool
	refunded               int64 // paid back to the holder; the card still holds it
}

func (r *runner) say(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }

// Run runs the event and returns its summary, which it also writes to
// DataDir/summary.json.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Exe == "" || cfg.DataDir == "" {
		return nil, errors.New("runbook: the loopcard binary and a data directory are required")
	}
	if cfg.Cards == 0 {
		cfg.Cards = 10
	}
	if cfg.Cards < 6 {
		return nil, errors.New("runbook: at least 6 cards")
	}
	if cfg.Taps == 0 {
		cfg.Taps = 4
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dir
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("runbook: clear %s: %w", dir, err)
	}
	// 0711: the embedded PostgreSQL runs as the postgres user when we are
	// root, and must be able to pass through the data directory.
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("runbook: %w", err)
	}
	for _, d := range []string{"cards", "stores", "terminals", "out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("runbook: %w", err)
		}
	}
	r := &runner{cfg: cfg, out: cfg.Out, log: cfg.Log, dir: dir, rng: rand.New(rand.NewPCG(cfg.Seed, 16)),
		sum: &Summary{DataDir: dir, Files: map[string]string{}}, storeCards: map[string][]*card{}}
	if cfg.HSMURI != "" {
		r.env = append(r.env, "LOOPCARD_HSM="+cfg.HSMURI)
	}
	if cfg.DatabaseURL != "" {
		r.env = append(r.env, "LOOPCARD_DATABASE_URL="+cfg.DatabaseURL)
	}
	start := time.Now()
	err = r.run(ctx)
	// Stop what still runs, newest first: cards, terminals, the API, the
	// reader last.
	for i := len(r.procs) - 1; i >= 0; i-- {
		err = errors.Join(err, r.procs[i].stop())
	}
	r.sum.Seconds = time.Since(start).Seconds()
	path := filepath.Join(dir, "summary.json")
	r.sum.Files["summary"] = path
	if werr := writeJSON(path, r.sum); werr != nil {
		err = errors.Join(err, werr)
	}
	return r.sum, err
}

func (r *runner) run(ctx context.Context) error {
	for _, st := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"a reader, the key ceremony and the API", r.start},
		{"organizer, event, merchants and stores", r.setup},
		{"personalize a batch of cards through the reader", r.personalize},
		{"hand the cards over to two stores", r.handover},
		{"sell cards at the stores, cash credit written onto each", r.sell},
		{"register two terminals and take payments", r.pay},
		{"clone a card and catch it", r.clone},
		{"top up online through the card page, written at the next tap", r.onlineTopUp},
		{"auto top-up: a claimed profile's rule charged at a tap below its threshold", r.autoTopUp},
		{"a cardholder asks for a refund; HQ pays it out", r.refund},
		{"close the day at each store", r.closeDay},
		{"export the audit log and verify it offline", r.audit},
		{"every card against the ledger", r.check},
	} {
		r.step = time.Now()
		r.say("\n== %s", st.name)
		if err := st.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		r.sum.Steps = append(r.sum.Steps, Step{Name: st.name, Seconds: time.Since(r.step).Seconds()})
	}
	return nil
}

// freePorts finds n consecutive free TCP ports on loopback.
func freePorts(n int) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		ok := true
		var more []net.Listener
		for i := 1; i < n; i++ {
			m, err := net.Listen("tcp", ":"+strconv.Itoa(port+i))
			if err != nil {
				ok = false
				break
			}
			more = append(more, m)
		}
		l.Close()
		for _, m := range more {
			m.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("runbook: no free TCP ports")
}

func money(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
