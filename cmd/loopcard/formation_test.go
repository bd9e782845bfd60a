package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/tlsca"
	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/migrations"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/pgcluster/formation"
	"github.com/loopcard/loopcard/softhsm"
)

// raceEnabled is set by race_test.go when the test binary has the race
// detector: the new binary is then built with it too, which reuses the
// packages the test build compiled.
var raceEnabled bool

// TestFormationCLI runs the processes an organizer runs, on a
// pg_auto_failover formation started with `loopcard db formation up`:
// `loopcard serve --database-url <multi-host URL>` and `loopcard terminal
// simulate --url` with 8 terminals, each a process of its own.
//
// First an upgrade during the event: while the terminals tap and upload
// and online loads wait for their cards, serve (this binary) is stopped,
// a new binary (this source built with the tag loopcard_upgradetest: one
// more migration) migrates the live database and serves on the same
// address (the terminals' queues fill meanwhile), and the formation's nodes
// are rolled (pg_autoctl perform switchover). Then a failover: the primary
// node is lost (`loopcard db formation kill primary`) while the terminals,
// run by the old binary on the newer schema, tap and upload.
//
// Each time: every terminal finishes, every transaction a terminal took is
// in the ledger once and every card equals the ledger, every transaction
// the API acknowledged is recorded, the pending loads are as they were
// (and the new binary writes them onto their cards), and the ledger's own
// checks pass.
func TestFormationCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a pg_auto_failover formation")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	exe, err := os.Executable()
	require.NoError(t, err)
	// Under /tmp, reachable by the postgres user the nodes run as.
	dir, err := os.MkdirTemp("", "lcfmcli-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	fdir := filepath.Join(dir, "formation")
	t.Cleanup(func() {
		if f, err := formation.Open(fdir, nil); err == nil {
			if err := f.Down(); err != nil {
				t.Log(err)
			}
		}
		_ = os.RemoveAll(dir)
	})

	// The new binary builds while the formation starts.
	newExe := filepath.Join(dir, "loopcard-new")
	built := make(chan error, 1)
	go func() {
		args := []string{"build", "-tags", "loopcard_upgradetest", "-o", newExe}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.CommandContext(ctx, "go", append(args, ".")...).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go build: %w: %s", err, out)
		}
		built <- err
	}()

	start := time.Now()
	port, err := formation.FreePort()
	require.NoError(t, err)
	var up struct {
		URL   string           `json:"url"`
		Nodes []formation.Node `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(runLoopcard(t, ctx, exe, "db", "formation", "up", "--dir", fdir, "--port", strconv.Itoa(port), "--json"), &up))
	require.Len(t, up.Nodes, 2, "a primary and its secondary")
	require.Contains(t, up.URL, "target_session_attrs=read-write")
	f, err := formation.Open(fdir, nil)
	require.NoError(t, err)
	t.Logf("formation up in %s", time.Since(start).Round(time.Millisecond))

	// The HSM token is shared by every process (SOFTHSM2_CONF is in the
	// environment they inherit); serve's local CA is made here first, so
	// that this process can set up what has no API before serve starts.
	hsm := softhsm.NewTestToken(t)
	data := filepath.Join(dir, "data")
	ca, _, err := tlsca.Ensure(filepath.Join(data, "tls"), nil)
	require.NoError(t, err)
	caFile := filepath.Join(ca.Dir, tlsca.CAFile)
	addr := freeAddr(t)
	global := []string{"--data-dir", data, "--hsm", hsm, "--database-url", up.URL}
	serveArgs := append(append([]string{}, global...), "serve", "--listen", addr, "--rate-ip", "-1", "--rate-client", "-1", "--rate-anonymous", "-1")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13}}}

	// This process's own view: the key hierarchy (made here), the ledger.
	s, err := sim.AttachStack(ctx, sim.AttachConfig{DataDir: filepath.Join(dir, "test"), HSMURI: hsm, DatabaseURL: up.URL,
		URL: "https://" + addr, CAFile: caFile})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	old, err := startProc(t, exe, serveArgs...)
	require.NoError(t, err)
	require.NoError(t, waitHealthy(ctx, hc, addr, old))

	// Online loads, paid and waiting for their cards: what the webhook
	// route records (api/sim TestFailover sends them through it).
	const org, event, merchant = 1, "sim", "sim-bar"
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Simulation"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, event, "Simulation", time.Time{}))
	require.NoError(t, s.Ledger.AddMerchant(ctx, org, merchant, "Simulated bar"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "cards"), 0o700))
	cards, err := s.IssueCards(ctx, org, event, 2, filepath.Join(dir, "cards"), "", nil)
	require.NoError(t, err)
	for i := range 6 {
		c := cards.Cards[i%2]
		require.NoError(t, s.Ledger.RecordPayment(ctx, "paytest", payment.Event{ID: fmt.Sprintf("evt-up-%d", i), Type: payment.TypePaymentSucceeded,
			Payment: fmt.Sprintf("pay-up-%d", i), Org: org, Card: fmt.Sprintf("%X", c.UID), Amount: int64(100 * (i + 1)),
			Currency: "EUR", Created: time.Now().Unix()}))
	}
	pending := map[string][]ledger.PendingLoad{}
	for _, c := range cards.Cards {
		p, err := s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Len(t, p, 3)
		pending[string(c.UID)] = p
	}
	simArgs := append(append([]string{}, global...), "terminal", "simulate", "--url", "https://"+addr, "--ca", caFile,
		"--terminals", "8", "--taps", "300", "--cards-per-terminal", "2", "--tap-every", "20ms", "--json")

	// The upgrade, at half of the taps.
	first, err := f.Primary(ctx)
	require.NoError(t, err)
	require.NoError(t, <-built, "the new binary")
	var newServe *proc
	var down time.Duration
	rep := simulate(t, ctx, exe, simArgs, func() error {
		stopped := time.Now()
		if err := old.stop(); err != nil {
			return fmt.Errorf("the old serve: %w", err)
		}
		if newServe, err = startProc(t, newExe, serveArgs...); err != nil {
			return err
		}
		if err := waitHealthy(ctx, hc, addr, newServe); err != nil {
			return err
		}
		down = time.Since(stopped)
		return f.Switchover(ctx)
	})
	t.Logf("upgrade: API away for %s; %d taps at %.0f taps/s, %d acknowledged at half, at most %d waiting in the queues; drain %.1f s",
		down.Round(time.Millisecond), rep.Taps, rep.TapsPerSecond, rep.AckedBeforeMidway, rep.MaxQueued, rep.DrainSeconds)
	checkRun(t, rep)
	require.GreaterOrEqual(t, rep.MaxQueued, 8*10, "the terminals' queues filled while the API was away")
	now, err := f.Primary(ctx)
	require.NoError(t, err)
	require.NotEqual(t, first, now, "the nodes swapped")
	s.Pool.Reset() // its connections were to the nodes as they were
	v, err := ledger.SchemaVersion(ctx, s.Pool)
	require.NoError(t, err)
	require.Equal(t, lastMigration(t)+1, int(v), "the new binary applied its migration")

	// Every pending load is as it was, and a terminal of the new binary
	// writes each onto its card and confirms it.
	hq, err := s.StaffToken(ctx, org, api.RoleHQ, "")
	require.NoError(t, err)
	tm, err := s.AddTerminal(ctx, hq, org, "upgrade-t1", s.TerminalConfig(filepath.Join(dir, "upgrade-t1"), event, merchant))
	require.NoError(t, err)
	defer tm.Close()
	for _, c := range cards.Cards {
		p, err := s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, pending[string(c.UID)], p, "the pending loads are as they were")
		loads, err := tm.WritePendingLoads(ctx, c.Field(), tm.ConfirmLoad)
		require.NoError(t, err)
		require.Len(t, loads, 3)
		var after int64
		for _, l := range loads {
			require.NotNil(t, l.Write)
			after = l.Write.After
		}
		b, err := s.Ledger.CardBalance(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, after, b, "the card and the ledger agree")
		p, err = s.Ledger.PendingLoads(ctx, org, c.UID)
		require.NoError(t, err)
		require.Empty(t, p)
	}
	require.NoError(t, s.Ledger.Verify(ctx))

	// The failover, at half of the taps, with the terminals run by the
	// old binary: it starts on the schema the new one migrated.
	first, err = f.Primary(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, first)
	var before int
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM terminal_txs WHERE org_id = $1", org).Scan(&before))
	type txKey struct {
		terminal string
		seq      int64
	}
	var committed []txKey // on the primary just before it was lost
	var promoted time.Duration
	var second string
	rep = simulate(t, ctx, exe, simArgs, func() error {
		conn, err := pgx.Connect(ctx, f.NodeURL(first))
		if err != nil {
			return err
		}
		rows, err := conn.Query(ctx, "SELECT terminal_id, terminal_seq FROM terminal_txs WHERE org_id = $1", org)
		if err == nil {
			committed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (txKey, error) {
				var k txKey
				return k, r.Scan(&k.terminal, &k.seq)
			})
		}
		_ = conn.Close(ctx)
		if err != nil {
			return err
		}
		// `db formation kill` sends SIGKILL to the node's keeper (with its
		// children) and then to its postmaster. The postmaster alone is
		// not a lost server: the keeper restarts it within a second, before
		// the monitor would fail over.
		killed := time.Now()
		kill := exec.CommandContext(ctx, exe, "db", "formation", "kill", "--dir", fdir, "primary")
		kill.Env = append(os.Environ(), childEnv+"=1")
		out, err := kill.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("killed "+first)) {
			return fmt.Errorf("kill: %v: %s", err, out)
		}
		second, err = f.WaitPrimary(ctx, first)
		promoted = time.Since(killed)
		return err
	})
	t.Logf("failover %s -> %s in %s; %d taps at %.0f taps/s, %d acknowledged at half, %d committed on the lost primary; drain %.1f s",
		first, second, promoted.Round(time.Millisecond), rep.Taps, rep.TapsPerSecond, rep.AckedBeforeMidway, len(committed)-before, rep.DrainSeconds)
	checkRun(t, rep)
	require.NotEqual(t, first, second, "the secondary was promoted")
	require.Positive(t, rep.AckedBeforeMidway, "the primary was lost with transactions acknowledged")
	require.GreaterOrEqual(t, len(committed)-before, rep.AckedBeforeMidway, "what the API acknowledged was committed on the primary")
	s.Pool.Reset()
	terminals, seqs := make([]string, len(committed)), make([]int64, len(committed))
	for i, k := range committed {
		terminals[i], seqs[i] = k.terminal, k.seq
	}
	var kept int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM unnest($2::text[], $3::bigint[]) AS k(terminal_id, terminal_seq)
		JOIN terminal_txs t ON t.org_id = $1 AND t.terminal_id = k.terminal_id AND t.terminal_seq = k.terminal_seq`,
		org, terminals, seqs).Scan(&kept))
	require.Equal(t, len(committed), kept, "every transaction committed on the lost primary is on the new one")
	require.NoError(t, s.Ledger.Verify(ctx))
	var h struct {
		Role string `json:"db_role"`
	}
	res, err := hc.Get("https://" + addr + "/healthz")
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&h))
	res.Body.Close()
	require.Equal(t, "primary", h.Role)
	require.NoError(t, newServe.stop())
}

// checkRun asserts what every simulate run must show.
func checkRun(t *testing.T, rep sim.SimReport) {
	t.Helper()
	require.Equal(t, 8*300, rep.Taps, "every terminal finished")
	require.Equal(t, rep.Taps, rep.Recorded, "every payment the cards committed, once")
	require.Equal(t, rep.Recorded, rep.Acked, "the API acknowledged every one")
	require.Zero(t, rep.Mismatched, "the ledger equals the cards")
}

// simulate runs `loopcard terminal simulate` with args as a process and
// calls midway when it says that half of the taps are done.
func simulate(t *testing.T, ctx context.Context, exe string, args []string, midway func() error) sim.SimReport {
	t.Helper()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	require.NoError(t, cmd.Start())
	var log strings.Builder
	mid := make(chan error, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "simulate: half of the taps done") {
				go func() { mid <- midway() }()
			}
		}
	}()
	err := cmd.Wait()
	pw.Close()
	<-scanned
	require.NoError(t, err, "simulate: %s", log.String())
	select {
	case err := <-mid:
		require.NoError(t, err, "midway")
	case <-time.After(3 * time.Minute):
		t.Fatal("midway did not finish")
	}
	var rep sim.SimReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	return rep
}

// runLoopcard runs one loopcard command of this binary and returns its
// output.
func runLoopcard(t *testing.T, ctx context.Context, exe string, args ...string) []byte {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "loopcard %s: %s", strings.Join(args, " "), stderr.String())
	return out
}

// proc is a loopcard process running in the background.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	once   sync.Once
	err    error
}

// startProc starts exe with args; the test's cleanup stops it.
func startProc(t *testing.T, exe string, args ...string) (*proc, error) {
	p := &proc{cmd: exec.Command(exe, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), childEnv+"=1")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = p.stop() })
	return p, nil
}

// stop stops the process as an operator does (SIGTERM: requests in flight
// are answered) and waits for it.
func (p *proc) stop() error {
	p.once.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGTERM) })
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within 30 s: %s", p.cmd.Path, p.stderr.String())
	}
	if p.err != nil && !strings.Contains(p.err.Error(), "signal: terminated") {
		return fmt.Errorf("%w: %s", p.err, p.stderr.String())
	}
	return nil
}

// waitHealthy waits until serve answers /healthz.
func waitHealthy(ctx context.Context, hc *http.Client, addr string, p *proc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/healthz", nil)
		res, err := hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("serve ended: %v: %s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve does not answer /healthz: %v: %s", err, p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// lastMigration is the number of the last shipped migration.
func lastMigration(t *testing.T) int {
	entries, err := fs.ReadDir(migrations.FS, ".")
	require.NoError(t, err)
	last := 0
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%03d_", &n); err == nil {
			last = max(last, n)
		}
	}
	return last
}
