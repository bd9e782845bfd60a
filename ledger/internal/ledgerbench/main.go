// Command ledgerbench measures the ledger against pgbench on one durable
// PostgreSQL started for the run: pgbench's TPC-B-like script, batched
// terminal uploads, pgbench again, single online transactions and pgbench a
// third time, all with the same number of clients; the median pgbench run
// is the baseline of both ratios. scripts/bench ledger runs it; its last
// line is the summary.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

const org = 1

// withItems: every debit carries this many line items (-items).
var withItems int

// withVouchers: every card also holds non-refundable credit (-vouchers).
var withVouchers bool

func main() {
	clients := flag.Int("clients", 8, "concurrent clients for every phase")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured phase")
	batchSize := flag.Int("batch", 500, "transactions per uploaded batch")
	cardsPerClient := flag.Int("cards", 500, "cards per client")
	flights := flag.Int("flights", 0, "coalesced Submit batches in flight (0: ledger.DefaultSubmitFlights)")
	flag.BoolVar(&withVouchers, "vouchers", false, "give every card voucher credit too, which every debit then spends first")
	flag.IntVar(&withItems, "items", 0, "line items per debit (0: version 1 transactions without items)")
	flag.Parse()
	if err := run(*clients, *duration, *batchSize, *cardsPerClient, *flights); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerbench:", err)
		os.Exit(1)
	}
}

func run(clients int, duration time.Duration, batchSize, cardsPerClient, flights int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lcbench-")
	if err != nil {
		return err
	}
	settings := map[string]string{}
	keep := os.Getenv("LEDGERBENCH_KEEP") != "" // diagnosis: keep the cluster (and its WAL) for pg_waldump
	if keep {
		fmt.Println("keeping", dir)
	}
	if os.Getenv("LEDGERBENCH_EXPLAIN") != "" {
		// Diagnosis: log the plans of slow statements to server.log, keep the directory.
		settings["session_preload_libraries"] = "auto_explain"
		settings["auto_explain.log_min_duration"] = os.Getenv("LEDGERBENCH_EXPLAIN")
		settings["auto_explain.log_nested_statements"] = "on"
		if !keep {
			fmt.Println("keeping", dir)
		}
	} else if !keep {
		defer os.RemoveAll(dir)
	}
	// Diagnosis: extra server settings, "name=value,name=value".
	for _, kv := range strings.Split(os.Getenv("LEDGERBENCH_SETTINGS"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			settings[k] = v
		}
	}
	if os.Getenv("LEDGERBENCH_STATS") != "" {
		settings["shared_preload_libraries"] = "pg_stat_statements"
		settings["pg_stat_statements.track"] = "all"
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Durable: true, Logger: log, Settings: settings})
	if err != nil {
		return err
	}
	defer c.Stop()
	var fsync, syncCommit string
	conn, err := pgxpool.New(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	_ = conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync)
	_ = conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&syncCommit)
	conn.Close()
	fmt.Printf("settings: fsync=%s synchronous_commit=%s clients=%d duration=%s batch=%d flights=%d\n", fsync, syncCommit, clients, duration, batchSize, flights)
	if fsync != "on" || syncCommit != "on" {
		return errors.New("the cluster is not durable")
	}

	// pgbench runs before, between and after the ledger's phases, and its
	// median is the baseline: on this machine the disk's commit latency,
	// which bounds pgbench more than anything, drifts by a factor of two
	// within minutes, and one run would make the ratios a lottery.
	pg, err := newPgbench(ctx, c, clients)
	if err != nil {
		return err
	}
	var pgRuns []float64
	runPgbench := func() error {
		tps, err := pg.run(ctx, duration)
		if err != nil {
			return err
		}
		pgRuns = append(pgRuns, tps)
		fmt.Printf("pgbench TPC-B-like (-M prepared, scale %d), run %d: %.0f tps\n", clients, len(pgRuns), tps)
		return nil
	}
	if err := runPgbench(); err != nil {
		return err
	}

	if err := c.CreateDatabase(ctx, "ledger"); err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(c.URL("ledger"))
	if err != nil {
		return err
	}
	cfg.MaxConns = int32(clients + 2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	opts := ledger.Options{SubmitFlights: flights}
	if os.Getenv("LEDGERBENCH_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	l := ledger.New(pool, opts)
	w, err := setup(ctx, l, clients, cardsPerClient)
	if err != nil {
		return err
	}

	// Batched uploads: each client uploads batches of its own terminal.
	// Diagnosis: LEDGERBENCH_SKIP_BATCH=1 measures the online phase only.
	expectBatch := 40000 * duration.Seconds() / float64(clients) // enough to keep busy
	if os.Getenv("LEDGERBENCH_SKIP_BATCH") != "" {
		expectBatch = 0
	}
	signStart := time.Now()
	batches := make([][][][]byte, clients)
	for i := range clients {
		n := int(expectBatch)/batchSize + 1
		for range n {
			batches[i] = append(batches[i], w.next(i, batchSize))
		}
	}
	fmt.Printf("signed %d transactions for the batch phase in %s\n", clients*len(batches[0])*batchSize, time.Since(signStart).Round(time.Millisecond))
	if p := os.Getenv("LEDGERBENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if os.Getenv("LEDGERBENCH_STATS") != "" {
		_, _ = pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
		_, _ = pool.Exec(ctx, "SELECT pg_stat_statements_reset()")
	}
	wal0 := walBytes(ctx, pool)
	if keep {
		fmt.Println("batch phase starts at WAL", walLSN(ctx, pool))
	}
	cpu0 := takeCPU(c)
	var batchN atomic.Int64
	batchTPS, err := measure(clients, duration, func(i, k int) (int, error) {
		if k >= len(batches[i]) {
			return 0, errExhausted
		}
		res, err := l.Upload(ctx, org, batches[i][k])
		if err != nil {
			return 0, err
		}
		for _, r := range res {
			if r.Status != ledger.Accepted {
				return 0, fmt.Errorf("batch: %s %v", r.Status, r.Err)
			}
		}
		batchN.Add(int64(len(res)))
		return len(res), nil
	})
	if err != nil {
		return err
	}
	// The online phase's ledger must not pay, in garbage collection, for
	// the batch phase's pre-signed transactions.
	batches = nil
	fmt.Printf("ledger batch upload (%d per batch, signatures verified): %.0f tps, %d WAL bytes per transaction, %s\n",
		batchSize, batchTPS, (walBytes(ctx, pool)-wal0)/max(1, batchN.Load()), takeCPU(c).since(cpu0, batchN.Load()))
	printStats(ctx, pool)
	if keep {
		fmt.Println("batch phase ends at WAL", walLSN(ctx, pool))
	}
	if err := runPgbench(); err != nil {
		return err
	}
	// Diagnosis: LEDGERBENCH_SKIP_ONLINE=1 measures the batch phase only.
	var onlineTPS float64
	if os.Getenv("LEDGERBENCH_SKIP_ONLINE") == "" {
		wal0 = walBytes(ctx, pool)
		var onlineN atomic.Int64

		online := make([][][]byte, clients)
		for i := range clients {
			online[i] = w.next(i, int(6000*duration.Seconds())/clients+1)
		}
		if os.Getenv("LEDGERBENCH_STATS") != "" {
			_, _ = pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
			_, _ = pool.Exec(ctx, "SELECT pg_stat_statements_reset()")
		}
		cpu0 = takeCPU(c)
		onlineTPS, err = measure(clients, duration, func(i, k int) (int, error) {
			if k >= len(online[i]) {
				return 0, errExhausted
			}
			r, err := l.Submit(ctx, org, online[i][k])
			if err != nil {
				return 0, err
			}
			if r.Status != ledger.Accepted {
				return 0, fmt.Errorf("online: %s %v", r.Status, r.Err)
			}
			onlineN.Add(1)
			return 1, nil
		})
		if err != nil {
			return err
		}
		fmt.Printf("ledger online single transactions: %.0f tps, %d WAL bytes per transaction, %s\n",
			onlineTPS, (walBytes(ctx, pool)-wal0)/max(1, onlineN.Load()), takeCPU(c).since(cpu0, onlineN.Load()))
		printStats(ctx, pool)
	}
	if err := runPgbench(); err != nil {
		return err
	}
	sort.Float64s(pgRuns)
	pgTPS := pgRuns[len(pgRuns)/2]
	fmt.Printf("pgbench median of %d runs: %.0f tps\n", len(pgRuns), pgTPS)
	if err := l.Verify(ctx); err != nil {
		return err
	}
	fmt.Println("ledger invariants hold after the run")
	// Stop the server first, so that its log record on stderr does not
	// follow the summary, which must be the last line even when stdout and
	// stderr share a terminal. (The deferred Stop then does nothing.)
	pool.Close()
	pg.pool.Close()
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Printf("ledger_batch_tps=%.0f ledger_online_tps=%.0f pgbench_tpcb_tps=%.0f batch_ratio=%.2f online_ratio=%.2f\n",
		batchTPS, onlineTPS, pgTPS, batchTPS/pgTPS, onlineTPS/pgTPS)
	return nil
}

// printStats prints the costliest statements since the last reset when
// LEDGERBENCH_STATS is set, and resets.
func printStats(ctx context.Context, pool *pgxpool.Pool) {
	if os.Getenv("LEDGERBENCH_STATS") == "" {
		return
	}
	rows, err := pool.Query(ctx, `SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),
		left(regexp_replace(query, '\s+', ' ', 'g'), 90) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12`)
	if err != nil {
		return
	}
	for rows.Next() {
		var calls int64
		var total, mean float64
		var q string
		_ = rows.Scan(&calls, &total, &mean, &q)
		fmt.Printf("  %8d calls %10.1f ms total %8.3f ms mean  %s\n", calls, total, mean, q)
	}
	rows.Close()
	_, _ = pool.Exec(ctx, "SELECT pg_stat_statements_reset()")
}

// cpuTimes is the processor time used by this process (the ledger and its
// clients) and by the PostgreSQL server at one moment: on a machine as
// noisy as ours, CPU time per transaction is steadier than wall-clock
// throughput, and it tells which side a change made cheaper.
type cpuTimes struct{ client, server time.Duration }

func takeCPU(c *pgcluster.Cluster) cpuTimes {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpuTimes{client: self, server: c.CPUTime()}
}

// since formats the CPU time per transaction used since t0.
func (t cpuTimes) since(t0 cpuTimes, n int64) string {
	n = max(n, 1)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	return fmt.Sprintf("CPU per transaction %.1f us (ledger %.1f us, PostgreSQL %.1f us)",
		us(t.client-t0.client+t.server-t0.server), us(t.client-t0.client), us(t.server-t0.server))
}

var errExhausted = errors.New("pre-signed transactions exhausted")

// walBytes returns the server's current WAL position in bytes.
func walBytes(ctx context.Context, pool *pgxpool.Pool) int64 {
	var n int64
	_ = pool.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").Scan(&n)
	return n
}

// walLSN returns the server's current WAL position.
func walLSN(ctx context.Context, pool *pgxpool.Pool) string {
	var s string
	_ = pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&s)
	return s
}

// measure runs op on every client until duration passes and returns the
// transactions per second.
func measure(clients int, duration time.Duration, op func(client, k int) (int, error)) (float64, error) {
	var total atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	deadline := start.Add(duration)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline); k++ {
				n, err := op(i, k)
				if errors.Is(err, errExhausted) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				total.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

// workload signs transactions: client i pays at terminal i with its own cards.
type workload struct {
	terms []*term
	cards [][]*card
	next_ []int
}

type term struct {
	id, merchant string
	key          ed25519.PrivateKey
	seq          int64
}

type card struct {
	uid []byte
	seq uint32
	bal int64
}

func setup(ctx context.Context, l *ledger.Ledger, clients, cardsPerClient int) (*workload, error) {
	start := time.Now()
	if err := l.CreateOrganizer(ctx, org, "Bench"); err != nil {
		return nil, err
	}
	if err := l.AddEvent(ctx, org, "fest", "Bench festival", time.Time{}); err != nil {
		return nil, err
	}
	if err := l.AddStore(ctx, org, "store", "Store"); err != nil {
		return nil, err
	}
	w := &workload{next_: make([]int, clients)}
	var all [][]byte
	for i := range clients {
		t := &term{id: fmt.Sprintf("bar-%d", i), merchant: fmt.Sprintf("merchant-%d", i)}
		if err := l.AddMerchant(ctx, org, t.merchant, t.merchant); err != nil {
			return nil, err
		}
		tok, err := l.CreateTerminal(ctx, org, t.id, t.merchant, time.Hour)
		if err != nil {
			return nil, err
		}
		_, t.key, _ = ed25519.GenerateKey(nil)
		if err := l.EnrolTerminal(ctx, org, t.id, tok, t.key.Public().(ed25519.PublicKey)); err != nil {
			return nil, err
		}
		w.terms = append(w.terms, t)
		var cs []*card
		for j := range cardsPerClient {
			uid := make([]byte, 7)
			uid[0] = 4
			binary.BigEndian.PutUint32(uid[3:], uint32(i*cardsPerClient+j+1))
			cs = append(cs, &card{uid: uid})
			all = append(all, uid)
		}
		w.cards = append(w.cards, cs)
	}
	if err := l.RegisterCards(ctx, org, "fest", all); err != nil {
		return nil, err
	}
	// Fund every card with cash top-ups (and vouchers), clients in parallel.
	const voucher = 100_000_00
	var codes []ledger.VoucherCode
	for len(codes) < len(all) && withVouchers {
		_, cs, err := l.IssueVouchers(ctx, org, ledger.VoucherBatch{Event: "fest", Amount: voucher, Count: min(len(all)-len(codes), ledger.MaxVoucherBatch),
			Expires: time.Now().Add(24 * time.Hour), Actor: "bench"})
		if err != nil {
			return nil, err
		}
		codes = append(codes, cs...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range w.cards[i] {
				c.seq++
				const amount = 100_000_00
				id, err := l.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store", Card: c.uid, Amount: amount})
				if err == nil {
					err = l.LoadPending(ctx, org, c.uid, id, &ledger.CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + amount})
				}
				if err != nil {
					errs <- err
					return
				}
				c.bal += amount
				if withVouchers {
					code := codes[int(binary.BigEndian.Uint32(c.uid[3:]))-1] // cards are numbered from 1
					load, v, err := l.RedeemVoucher(ctx, org, ledger.VoucherRedemption{Card: c.uid, Code: code, Actor: "bench"})
					if err == nil {
						c.seq++
						err = l.LoadPending(ctx, org, c.uid, load, &ledger.CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + v})
					}
					if err != nil {
						errs <- err
						return
					}
					c.bal += v
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	fmt.Printf("set up %d terminals and %d funded cards in %s\n", clients, len(all), time.Since(start).Round(time.Millisecond))
	return w, nil
}

// next signs n transactions of client i, cycling over its cards.
func (w *workload) next(i, n int) [][]byte {
	out := make([][]byte, n)
	t := w.terms[i]
	var rnd [10]byte
	for k := range out {
		c := w.cards[i][w.next_[i]%len(w.cards[i])]
		w.next_[i]++
		t.seq++
		c.seq++
		amount := int64(100 + t.seq%900)
		var items []terminaltx.Item
		if withItems > 0 {
			amount = 0
			for j := range withItems {
				it := terminaltx.Item{Product: fmt.Sprintf("product-%d", j), Quantity: int32(1 + j%3),
					UnitPrice: int64(50 + (t.seq+int64(j))%200), VATRateBP: 2100, MenuVersion: 1}
				items = append(items, it)
				amount += int64(it.Quantity) * it.UnitPrice
			}
		}
		binary.BigEndian.PutUint64(rnd[:], uint64(t.seq))
		rnd[8] = byte(i)
		tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(time.Now(), rnd[:]), Organizer: org,
			Terminal: t.id, TerminalSeq: t.seq, Card: c.uid, CardSeq: c.seq, Amount: amount,
			BalanceBefore: c.bal, BalanceAfter: c.bal - amount, Merchant: t.merchant, Time: time.Now(), Items: items}
		c.bal -= amount
		s, err := terminaltx.Sign(&tx, t.key)
		if err != nil {
			panic(err)
		}
		out[k] = s.Bytes()
	}
	return out
}

// pgbenchDB is pgbench's TPC-B-like database on the cluster, initialised
// once and run several times.
type pgbenchDB struct {
	bin     string
	args    []string // connection arguments
	clients int
	pool    *pgxpool.Pool
}

// newPgbench creates and initialises the pgbench database (scale = clients).
func newPgbench(ctx context.Context, c *pgcluster.Cluster, clients int) (*pgbenchDB, error) {
	bin, err := pgbenchPath()
	if err != nil {
		return nil, err
	}
	if err := c.CreateDatabase(ctx, "pgbench"); err != nil {
		return nil, err
	}
	p := &pgbenchDB{bin: bin, args: []string{"-h", c.Dir(), "-U", "postgres"}, clients: clients}
	init := exec.CommandContext(ctx, bin, append(append([]string{"-i", "-q", "-s", strconv.Itoa(clients)}, p.args...), "pgbench")...)
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgbench -i: %w: %s", err, out)
	}
	if p.pool, err = pgxpool.New(ctx, c.URL("pgbench")); err != nil {
		return nil, err
	}
	return p, nil
}

// run runs the TPC-B-like script for duration and returns its tps.
func (p *pgbenchDB) run(ctx context.Context, duration time.Duration) (float64, error) {
	wal0 := walBytes(ctx, p.pool)
	secs := int(duration.Seconds())
	runCmd := exec.CommandContext(ctx, p.bin, append(append([]string{"-M", "prepared", "-c", strconv.Itoa(p.clients), "-j", "2",
		"-T", strconv.Itoa(secs)}, p.args...), "pgbench")...)
	out, err := runCmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in output: %s", out)
	}
	if n := regexp.MustCompile(`actually processed: ([0-9]+)`).FindSubmatch(out); n != nil {
		count, _ := strconv.ParseInt(string(n[1]), 10, 64)
		fmt.Printf("pgbench: %d WAL bytes per transaction\n", (walBytes(ctx, p.pool)-wal0)/max(1, count))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// pgbenchPath finds pgbench next to the newest PostgreSQL server, as
// pgcluster finds the server.
func pgbenchPath() (string, error) {
	if d := os.Getenv("LOOPCARD_PG_BINDIR"); d != "" {
		return filepath.Join(d, "pgbench"), nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(matches) == 0 {
		if p, err := exec.LookPath("pgbench"); err == nil {
			return p, nil
		}
		return "", errors.New("pgbench not found: install the Debian package postgresql")
	}
	sort.Slice(matches, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return a > b
	})
	return matches[0], nil
}
