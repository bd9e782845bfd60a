// Command loadtest measures the API from a second process over real HTTPS
// on loopback: it starts itself again as the server (PostgreSQL, a SoftHSM2
// token and the API with seeded cards, in a temporary directory), then
// drives balance lookups at a fixed rate and terminal batch uploads from
// concurrent clients, each for a bounded time, and reports requests per
// second and p50/p99 latency. scripts/bench api runs it; its last line is
// the summary.
//
// With -abuse (scripts/bench abuse) the server runs with serve's default
// limits and the driver measures, for each abuse of issue 17, the server
// process's memory and /healthz p50/p99 under it against the same figures
// just before it (abuse.go).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/apitype"
	"github.com/loopcard/loopcard/api/httpsig"
	"github.com/loopcard/loopcard/api/tlsca"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/pgcluster"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/softhsm"
)

const org = 1

// seed is what the server process tells the driver.
type seed struct {
	URL        string   `json:"url"`
	CA         []byte   `json:"ca"`
	CardTokens []string `json:"card_tokens"`
	CardIDs    [][]byte `json:"card_ids"`
	Terminals  []string `json:"terminals"`
	EnrolTok   []string `json:"enrol_tokens"`
	Balance    int64    `json:"balance"`
	// HQToken reads /metrics (with -abuse).
	HQToken string `json:"hq_token,omitempty"`
	// Staff signs in to the console (with -console).
	Staff *benchStaff `json:"staff,omitempty"`
}

func main() {
	serveMode := flag.Bool("serve", false, "internal: be the server process")
	cards := flag.Int("cards", 500, "cards to seed")
	rate := flag.Int("rate", 1000, "balance lookups per second")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured phase (at most 60 s)")
	clients := flag.Int("clients", 4, "concurrent terminals uploading batches")
	batchSize := flag.Int("batch", 100, "transactions per uploaded batch")
	abuse := flag.Bool("abuse", false, "measure memory and /healthz under each abuse instead (scripts/bench abuse)")
	addrs := flag.Int("addrs", 2000, "with -abuse: loopback addresses of the anonymous flood")
	consoleMode := flag.Bool("console", false, "measure the console's dashboard against /healthz instead (scripts/bench console)")
	txs := flag.Int("txs", 1_000_000, "with -console: terminal transactions in the ledger")
	flag.Parse()
	if *consoleMode {
		var err error
		switch {
		case *cards < 1 || *txs < 1 || *duration <= 0 || *duration > 5*time.Minute:
			fmt.Fprintln(os.Stderr, "loadtest: -console needs cards > 0, txs > 0 and 0 < duration <= 5m")
			os.Exit(2)
		case *serveMode:
			err = runServer(*cards, 0, false, *txs)
		default:
			err = driveConsole(*cards, *txs, *duration)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		return
	}
	if *abuse && !*serveMode {
		if *duration > time.Minute || *duration <= 0 || *addrs < 1 || *addrs > 60000 {
			fmt.Fprintln(os.Stderr, "loadtest: -abuse needs 0 < duration <= 60s and 0 < addrs <= 60000")
			os.Exit(2)
		}
		if err := driveAbuse(*duration, *addrs); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		return
	}
	if *duration > time.Minute || *duration <= 0 || *cards < *clients**batchSize || *rate <= 0 || *rate > 20000 {
		fmt.Fprintln(os.Stderr, "loadtest: need 0 < duration <= 60s, 0 < rate <= 20000 and cards >= clients*batch")
		os.Exit(2)
	}
	var err error
	if *serveMode {
		err = runServer(*cards, *clients, *abuse, 0)
	} else {
		err = drive(*cards, *rate, *duration, *clients, *batchSize)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// runServer is the server process: it seeds, serves, prints the seed as one
// JSON line on stdout, and stops when stdin closes.
// With abuse, the server keeps serve's default limits and the seed has an
// HQ token.
// With consoleTxs, the seed is the console bench's (seedConsole).
func runServer(nCards, nTerminals int, abuse bool, consoleTxs int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "lcapibench-")
	if err != nil {
		return err
	}
	if os.Getenv("LOADTEST_KEEP") != "" { // diagnosis: keep the directory (the server's log)
		fmt.Fprintln(os.Stderr, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "api.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := slog.New(slog.NewJSONHandler(logFile, nil))

	// Diagnosis: extra server settings, "name=value,name=value" (e.g.
	// log_min_duration_statement=1 with LOADTEST_KEEP).
	settings := map[string]string{}
	for _, kv := range strings.Split(os.Getenv("LOADTEST_PG_SETTINGS"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			settings[k] = v
		}
	}
	cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "pg"), Durable: true, Settings: settings})
	if err != nil {
		return err
	}
	defer cl.Stop()
	if err := cl.CreateDatabase(ctx, "bench"); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cl.URL("bench"))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := ledger.Migrate(ctx, pool); err != nil {
		return err
	}
	uri, _, err := softhsm.Embedded(filepath.Join(dir, "hsm"))
	if err != nil {
		return err
	}
	h, err := keys.Open(uri, keys.Options{})
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.Init(ctx); err != nil {
		return err
	}
	l := ledger.New(pool, ledger.Options{Logger: log, Sealer: h})
	s := seed{Balance: 1_000_000}
	if consoleTxs > 0 {
		err = seedConsole(ctx, l, pool, h, nCards, consoleTxs, &s)
	} else {
		err = seedData(ctx, l, pool, h, nCards, nTerminals, &s)
	}
	if err != nil {
		return err
	}
	limits := api.Limits{PerIP: -1, PerClient: -1, Anonymous: -1, MaxConnsPerAddr: -1}
	if abuse {
		limits = api.Limits{}
		tok, err := api.IssueToken(ctx, pool, api.TokenRequest{Org: org, Role: api.RoleHQ, TTL: time.Hour}, time.Now())
		if err != nil {
			return err
		}
		s.HQToken = tok.Reveal()
	}
	srv, err := api.New(api.Config{Ledger: l, Batches: batch.NewBatches(pool), HSM: h, Logger: log, Limits: limits})
	if err != nil {
		return err
	}
	ca, _, err := tlsca.Ensure(filepath.Join(dir, "tls"), nil)
	if err != nil {
		return err
	}
	cert, err := ca.ServerCertificate()
	if err != nil {
		return err
	}
	s.CA = ca.Cert.Raw
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.URL = "https://" + ln.Addr().String()
	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // the driver closes stdin when done
		stop()
	}()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln, api.TLSConfig(cert, nil), 5*time.Second) }()
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		return err
	}
	return <-done
}

func seedData(ctx context.Context, l *ledger.Ledger, pool *pgxpool.Pool, h *keys.HSM, n, nTerminals int, s *seed) error {
	if err := l.CreateOrganizer(ctx, org, "Bench"); err != nil {
		return err
	}
	if err := l.AddEvent(ctx, org, "fest", "Fest", time.Time{}); err != nil {
		return err
	}
	if err := l.AddMerchant(ctx, org, "bar", "Bar"); err != nil {
		return err
	}
	if err := l.AddStore(ctx, org, "store", "Store"); err != nil {
		return err
	}
	bs := batch.NewBatches(pool)
	b, err := bs.Create(ctx, org, "fest", n, personalize.DefaultLayout())
	if err != nil {
		return err
	}
	pin, err := h.NewPIN(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		uid := []byte{0x04, 0x10, 0x20, 0x30, byte(i >> 16), byte(i >> 8), byte(i)}
		res, err := bs.Reserve(ctx, org, b.No, uid)
		if err != nil {
			return err
		}
		raw := make([]byte, 16)
		_, _ = rand.Read(raw)
		th := sha256.Sum256(raw)
		pvv, err := h.PINVerificationValue(ctx, uid, pin)
		if err != nil {
			return err
		}
		if _, err := bs.Finish(ctx, org, b.No, res.Slot, uid, batch.Finished{KeyVersions: map[string]int{"app-debit": 1},
			TokenHash: th[:], PVV: pvv.MAC, PVVKeyVersion: pvv.KeyVersion}); err != nil {
			return err
		}
		s.CardTokens = append(s.CardTokens, base64.RawURLEncoding.EncodeToString(raw))
		s.CardIDs = append(s.CardIDs, uid)
	}
	if err := l.RegisterCards(ctx, org, "fest", s.CardIDs); err != nil {
		return err
	}
	for _, c := range s.CardIDs {
		// Cash credit is a pending load until its card write is confirmed;
		// the bench's cards start with it on them (no write of their own).
		id, err := l.TopUpCash(ctx, org, ledger.CashTopUp{Store: "store", Card: c, Amount: s.Balance})
		if err != nil {
			return err
		}
		if err := l.LoadPending(ctx, org, c, id, nil); err != nil {
			return err
		}
	}
	for i := 0; i < nTerminals; i++ {
		id := fmt.Sprintf("bench-%d", i)
		tok, err := l.CreateTerminal(ctx, org, id, "bar", time.Hour)
		if err != nil {
			return err
		}
		s.Terminals = append(s.Terminals, id)
		s.EnrolTok = append(s.EnrolTok, tok.Reveal())
	}
	return nil
}

// driver is the measuring process.
type driver struct {
	seed   seed
	client *http.Client
}

// server is the server process, started by the driver.
type server struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	seed  seed
	ca    *x509.CertPool
}

// startServer starts this program again with -serve and args and waits
// for its seed.
func startServer(args ...string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-serve"}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	srv := &server{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		srv.stop()
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	if err := json.Unmarshal(line, &srv.seed); err != nil {
		srv.stop()
		return nil, err
	}
	fmt.Printf("server ready in %s: %d cards, %d terminals\n", time.Since(start).Round(time.Millisecond), len(srv.seed.CardIDs), len(srv.seed.Terminals))
	ca, err := x509.ParseCertificate(srv.seed.CA)
	if err != nil {
		srv.stop()
		return nil, err
	}
	srv.ca = x509.NewCertPool()
	srv.ca.AddCert(ca)
	return srv, nil
}

// stop closes the server's stdin, which stops it, and waits for it.
func (s *server) stop() {
	s.stdin.Close()
	if err := s.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: server:", err)
	}
}

func drive(nCards, rate int, d time.Duration, clients, batchSize int) error {
	srv, err := startServer(fmt.Sprintf("-cards=%d", nCards), fmt.Sprintf("-clients=%d", clients))
	if err != nil {
		return err
	}
	defer srv.stop()
	dr := driver{seed: srv.seed}
	pool := srv.ca
	dr.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256,
	}}

	// The same rate of /healthz (one database ping) first: what this
	// machine gives at the moment, to compare the balance lookup with.
	base, err := dr.ratePhase("healthz", "/healthz", false, rate, d)
	if err != nil {
		return err
	}
	bal, err := dr.ratePhase("balance lookups", "/v1/card", true, rate, d)
	if err != nil {
		return err
	}
	up, err := dr.uploadPhase(clients, batchSize, d)
	if err != nil {
		return err
	}
	fmt.Printf("summary: healthz baseline %.0f/s p50 %s p99 %s; balance lookups %.0f/s (target %d) p50 %s p99 %s errors %d; batch uploads %.1f/s of %d tx (%.0f tx/s) p50 %s p99 %s errors %d\n",
		base.rps, base.p50, base.p99, bal.rps, rate, bal.p50, bal.p99, bal.errors, up.rps, batchSize, up.rps*float64(batchSize), up.p50, up.p99, up.errors)
	return nil
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

func summarize(lat []time.Duration, errs int64, elapsed time.Duration) result {
	slices.Sort(lat)
	r := result{rps: float64(len(lat)) / elapsed.Seconds(), errors: errs}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)*50/100].Round(10 * time.Microsecond)
		r.p99 = lat[min(len(lat)-1, len(lat)*99/100)].Round(10 * time.Microsecond)
	}
	return r
}

// ratePhase sends GET path at a fixed rate (open loop: a slow answer does
// not slow the sending down) for d, after a 2 s warm-up, with a card's
// token when card is set.
func (dr *driver) ratePhase(name, path string, card bool, rate int, d time.Duration) (result, error) {
	lookup := func(i int) (time.Duration, error) {
		req, err := http.NewRequest("GET", dr.seed.URL+path, nil)
		if err != nil {
			return 0, err
		}
		if card {
			req.Header.Set("Authorization", "Card "+dr.seed.CardTokens[i%len(dr.seed.CardTokens)])
		}
		t := time.Now()
		resp, err := dr.client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t), nil
	}
	run := func(d time.Duration, record bool) result {
		var mu sync.Mutex
		var lat []time.Duration
		var errs atomic.Int64
		var wg sync.WaitGroup
		interval := time.Second / time.Duration(rate)
		start := time.Now()
		n := int(d / interval)
		for i := 0; i < n; i++ {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := lookup(i)
				if err != nil {
					errs.Add(1)
					return
				}
				if record {
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return summarize(lat, errs.Load(), time.Since(start))
	}
	run(2*time.Second, false)
	r := run(d, true)
	fmt.Printf("%s: %.0f/s (target %d) p50 %s p99 %s errors %d\n", name, r.rps, rate, r.p50, r.p99, r.errors)
	return r, nil
}

type benchTerminal struct {
	id      string
	priv    ed25519.PrivateKey
	signer  *httpsig.Signer
	session string
	seq     int64
}

func (dr *driver) post(path string, t *benchTerminal, body any) (*http.Response, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest("POST", dr.seed.URL+path, bytes.NewReader(b))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if t != nil {
		if err := t.signer.Sign(req, b); err != nil {
			return nil, nil, err
		}
		if t.session != "" {
			req.Header.Set(apitype.HeaderSessionKey, t.session)
		}
	}
	resp, err := dr.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp, out, err
}

// uploadPhase has each terminal upload batches of debits, one after the
// other (closed loop), for d.
func (dr *driver) uploadPhase(clients, batchSize int, d time.Duration) (result, error) {
	terms := make([]*benchTerminal, clients)
	for i := range terms {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		kex, _ := ecdh.X25519().GenerateKey(rand.Reader)
		t := &benchTerminal{id: dr.seed.Terminals[i], priv: priv}
		resp, body, err := dr.post("/v1/terminals/enrol", nil, apitype.EnrolRequest{Org: org, Terminal: t.id, Token: dr.seed.EnrolTok[i],
			SigningKey: pub, KexAlg: "x25519", KexKey: kex.PublicKey().Bytes()})
		if err != nil || resp.StatusCode != 201 {
			return result{}, fmt.Errorf("enrol: %v %s", err, body)
		}
		t.signer = httpsig.NewSigner(priv, api.KeyID(org, t.id))
		resp, body, err = dr.post("/v1/terminal/session-keys", t, apitype.SessionKeyRequest{Event: "fest"})
		if err != nil || resp.StatusCode != 201 {
			return result{}, fmt.Errorf("session key: %v %s", err, body)
		}
		var sk apitype.SessionKeyResponse
		if err := json.Unmarshal(body, &sk); err != nil {
			return result{}, err
		}
		t.session = sk.KeyID
		terms[i] = t
	}
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for ci, t := range terms {
		// Each terminal has its own cards; each round debits each once.
		cards := dr.seed.CardIDs[ci*batchSize : (ci+1)*batchSize]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := uint32(1); time.Now().Before(deadline); round++ {
				txs := make([][]byte, len(cards))
				for j, c := range cards {
					t.seq++
					var rnd [10]byte
					_, _ = rand.Read(rnd[:])
					before := dr.seed.Balance - int64(round-1)
					tx := &terminaltx.Tx{Kind: terminaltx.KindDebit, ID: txid.New(time.Now(), rnd[:]), Organizer: org,
						Terminal: t.id, TerminalSeq: t.seq, Card: c, CardSeq: round, Amount: 1, BalanceBefore: before,
						BalanceAfter: before - 1, Merchant: "bar", Time: time.Now()}
					s, err := terminaltx.Sign(tx, t.priv)
					if err != nil {
						errs.Add(1)
						return
					}
					txs[j] = s.Bytes()
				}
				t0 := time.Now()
				resp, body, err := dr.post("/v1/terminal/batches", t, apitype.BatchRequest{Transactions: txs, Heartbeat: &apitype.Heartbeat{}}) // as api/terminal sends
				if err != nil || resp.StatusCode != 200 {
					errs.Add(1)
					fmt.Fprintf(os.Stderr, "upload: %v %s\n", err, body)
					continue
				}
				var br apitype.BatchResponse
				if err := json.Unmarshal(body, &br); err != nil || len(br.Results) != len(txs) {
					errs.Add(1)
					continue
				}
				for _, r := range br.Results {
					if r.Status != "accepted" {
						errs.Add(1)
						break
					}
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r := summarize(lat, errs.Load(), time.Since(start))
	fmt.Printf("batch uploads: %.1f/s of %d tx (%.0f tx/s) p50 %s p99 %s errors %d\n", r.rps, batchSize, r.rps*float64(batchSize), r.p50, r.p99, r.errors)
	if r.errors > 0 {
		return r, errors.New("uploads failed")
	}
	return r, nil
}
