// Package formation runs a private pg_auto_failover formation on one
// machine: a monitor, a primary and a synchronous secondary, each a
// PostgreSQL server managed by its own pg_autoctl keeper, under one
// directory and on three consecutive loopback ports. It is what the
// failover tests and `loopcard db formation` start; production runs the
// same three nodes on three machines (docs/run-an-event.md).
//
// The keepers run detached (a session of their own each), so a formation
// outlives the command that started it; Open finds it again from its
// directory. Kill simulates the loss of a node's machine: SIGKILL to the
// keeper, its children and its PostgreSQL.
package formation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/pgcluster"
)

// ErrNotInstalled is returned when pg_auto_failover is missing.
var ErrNotInstalled = errors.New("pg_auto_failover not found: install the Debian packages postgresql-15-auto-failover and pg-auto-failover-cli (scripts/setup)")

// Database is the database the formation's nodes create for Loopcard.
const Database = "loopcard"

// Nodes are the names of the two PostgreSQL nodes; the monitor is "monitor".
var Nodes = []string{"node1", "node2"}

// Options configure a formation.
type Options struct {
	// Dir holds the formation: one data directory per node, the keepers'
	// configuration and state, their logs and pid files.
	Dir string
	// Port is the monitor's port; the nodes take Port+1 and Port+2. All
	// listen on 127.0.0.1 only.
	Port int
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Formation is a formation under a directory.
type Formation struct {
	dir  string
	port int
	bin  string // PostgreSQL's bin directory
	cred *syscall.Credential
	log  *slog.Logger
}

// meta is what Up records in the directory for Open.
type meta struct {
	Port int `json:"port"`
}

// Node is a node as the monitor sees it.
type Node struct {
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Reported string `json:"reported_state"` // e.g. primary, secondary, catchingup
	Assigned string `json:"assigned_state"`
	Healthy  bool   `json:"healthy"`
}

func prepare(dir string, log *slog.Logger) (*Formation, error) {
	if dir == "" {
		return nil, errors.New("formation: no directory given")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("pg_autoctl"); err != nil {
		return nil, ErrNotInstalled
	}
	bin, err := pgcluster.BinDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "lib", "pgautofailover.so")); err != nil {
		return nil, ErrNotInstalled
	}
	cred, err := pgcluster.ServerCredential()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Formation{dir: dir, bin: bin, cred: cred, log: log}, nil
}

// Open finds the formation that Up made under dir.
func Open(dir string, log *slog.Logger) (*Formation, error) {
	f, err := prepare(dir, log)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "formation.json"))
	if err != nil {
		return nil, fmt.Errorf("formation: no formation under %s: start one with `loopcard db formation up --dir %s --port P`", f.dir, f.dir)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("formation: %s: %w", filepath.Join(f.dir, "formation.json"), err)
	}
	f.port = m.Port
	return f, nil
}

// Up creates the formation under opts.Dir on first use, starts every node
// that is not running, and waits until it has a primary and a synchronous
// secondary. A first start takes about 15 s.
func Up(ctx context.Context, opts Options) (*Formation, error) {
	f, err := prepare(opts.Dir, opts.Logger)
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(f.dir, "formation.json")); err == nil {
		var m meta
		_ = json.Unmarshal(b, &m)
		if opts.Port != 0 && m.Port != opts.Port {
			return nil, fmt.Errorf("formation: %s was made on port %d, not %d", f.dir, m.Port, opts.Port)
		}
		f.port = m.Port
	} else {
		if opts.Port <= 0 || opts.Port > 65533 {
			return nil, errors.New("formation: give the monitor's port (--port); the nodes take the next two")
		}
		f.port = opts.Port
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return nil, fmt.Errorf("formation: %w", err)
	}
	if f.cred != nil {
		if err := os.Chown(f.dir, int(f.cred.Uid), int(f.cred.Gid)); err != nil {
			return nil, fmt.Errorf("formation: %w", err)
		}
	}
	b, _ := json.Marshal(meta{Port: f.port})
	if err := os.WriteFile(filepath.Join(f.dir, "formation.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("formation: %w", err)
	}

	start := time.Now()
	if !f.running("monitor") {
		if !f.created("monitor") {
			if err := f.createMonitor(ctx); err != nil {
				return nil, err
			}
		}
		if err := f.spawn("monitor", "run", "--pgdata", f.pgdata("monitor")); err != nil {
			return nil, err
		}
	}
	if err := f.waitMonitor(ctx); err != nil {
		return nil, err
	}
	for _, n := range Nodes {
		if err := f.Start(n); err != nil {
			return nil, err
		}
		// The first node must register first to become the primary.
		if err := f.waitRegistered(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := f.WaitReady(ctx); err != nil {
		return nil, err
	}
	f.log.Info("formation ready", "dir", f.dir, "took", time.Since(start).Round(time.Millisecond))
	return f, nil
}

// Start starts node name's keeper if it is not running: a node made
// before rejoins (an old primary comes back as a secondary).
func (f *Formation) Start(name string) error {
	if f.running(name) {
		return nil
	}
	if f.created(name) {
		return f.spawn(name, "run", "--pgdata", f.pgdata(name))
	}
	port := f.nodePort(name)
	return f.spawn(name, "create", "postgres", "--pgdata", f.pgdata(name), "--pgport", strconv.Itoa(port),
		"--hostname", "localhost", "--listen", "127.0.0.1", "--auth", "trust", "--no-ssl",
		"--monitor", f.monitorURL("autoctl_node", "pg_auto_failover"),
		"--name", name, "--dbname", Database, "--run")
}

// URL is the multi-host URL clients use: whichever node accepts writes.
func (f *Formation) URL() string {
	hosts := make([]string, len(Nodes))
	for i, n := range Nodes {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", f.nodePort(n))
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?target_session_attrs=read-write&sslmode=disable&connect_timeout=2",
		strings.Join(hosts, ","), Database)
}

// NodeURL is the URL of one node, whatever its role.
func (f *Formation) NodeURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", f.nodePort(name), Database)
}

// MonitorURL is the monitor's URL.
func (f *Formation) MonitorURL() string { return f.monitorURL("autoctl_node", "pg_auto_failover") }

// Dir is the formation's directory.
func (f *Formation) Dir() string { return f.dir }

// Port is the monitor's port.
func (f *Formation) Port() int { return f.port }

// State returns every node as the monitor sees it.
func (f *Formation) State(ctx context.Context) ([]Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.MonitorURL())
	if err != nil {
		return nil, fmt.Errorf("formation: monitor: %w", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT nodename, nodeport, reportedstate::text, goalstate::text, health = 1
		FROM pgautofailover.node ORDER BY nodename`)
	if err != nil {
		return nil, fmt.Errorf("formation: monitor: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		err := r.Scan(&n.Name, &n.Port, &n.Reported, &n.Assigned, &n.Healthy)
		return n, err
	})
}

// Primary returns the node the monitor has as the one taking writes, or
// "": a primary, or a wait_primary (a primary whose secondary is lost,
// which takes writes alone until a secondary catches up again).
func (f *Formation) Primary(ctx context.Context) (string, error) {
	nodes, err := f.State(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if (n.Reported == "primary" || n.Reported == "wait_primary") && n.Reported == n.Assigned {
			return n.Name, nil
		}
	}
	return "", nil
}

// WaitReady waits until one node is primary and the other its
// secondary. While a secondary copies the primary, it asks the primary
// for a checkpoint now and then: pg_basebackup otherwise waits for a
// spread one.
func (f *Formation) WaitReady(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	var last []Node
	for time.Now().Before(deadline) {
		nodes, err := f.State(ctx)
		if err == nil {
			last = nodes
			var primary, secondary, catching string
			for _, n := range nodes {
				switch {
				case n.Reported == "primary" && n.Assigned == "primary":
					primary = n.Name
				case n.Reported == "secondary" && n.Assigned == "secondary":
					secondary = n.Name
				case n.Reported == "wait_primary" || n.Reported == "single":
					catching = n.Name
				}
			}
			if primary != "" && secondary != "" {
				return nil
			}
			if catching != "" {
				f.checkpoint(ctx, catching)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("formation: no primary with a synchronous secondary within 3 minutes (nodes: %+v); see the logs in %s", last, f.dir)
}

// WaitPrimary waits until a node other than not is primary and returns it.
func (f *Formation) WaitPrimary(ctx context.Context, not string) (string, error) {
	for {
		if p, err := f.Primary(ctx); err == nil && p != "" && p != not {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (f *Formation) checkpoint(ctx context.Context, node string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.NodeURL(node))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "CHECKPOINT")
}

// Kill simulates the loss of node name's machine: SIGKILL to its keeper,
// the keeper's children and its PostgreSQL server (killing the postmaster
// alone is not a lost server: the keeper restarts it within a second).
func (f *Formation) Kill(name string) error {
	pid, err := f.pid(name)
	if err != nil {
		return err
	}
	pg := f.postmaster(name)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("formation: kill %s: %w", name, err)
	}
	if pg > 0 {
		_ = syscall.Kill(pg, syscall.SIGKILL)
	}
	f.waitGone(pid, 10*time.Second)
	if pg > 0 {
		f.waitGone(pg, 10*time.Second)
	}
	_ = os.Remove(f.pidFile(name))
	return nil
}

// Switchover makes the secondary the primary and the primary the
// secondary, in order (pg_autoctl perform switchover): how the nodes are
// rolled one by one for maintenance or a PostgreSQL minor upgrade. Writes
// fail for the few seconds it takes; it returns when the formation has a
// primary and a secondary again.
func (f *Formation) Switchover(ctx context.Context) error {
	out, err := f.command(ctx, "perform", "switchover", "--pgdata", f.pgdata("monitor"), "--wait", "120").CombinedOutput()
	if err != nil {
		return fmt.Errorf("formation: pg_autoctl perform switchover: %w: %s", err, lastLines(out))
	}
	return f.WaitReady(ctx)
}

// Down stops every node, secondary and primary first, then the monitor.
func (f *Formation) Down() error {
	var errs []error
	for _, n := range append(append([]string{}, Nodes...), "monitor") {
		pid, err := f.pid(n)
		if err != nil {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		if !f.waitGone(pid, 30*time.Second) {
			_ = f.Kill(n)
			errs = append(errs, fmt.Errorf("formation: %s did not stop within 30 s and was killed", n))
		}
		if pg := f.postmaster(n); pg > 0 {
			_ = syscall.Kill(pg, syscall.SIGKILL)
		}
		_ = os.Remove(f.pidFile(n))
	}
	return errors.Join(errs...)
}

// Running reports whether node name's keeper runs.
func (f *Formation) Running(name string) bool { return f.running(name) }

func (f *Formation) createMonitor(ctx context.Context) error {
	cmd := f.command(ctx, "create", "monitor", "--pgdata", f.pgdata("monitor"), "--pgport", strconv.Itoa(f.port),
		"--hostname", "localhost", "--auth", "trust", "--no-ssl")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("formation: pg_autoctl create monitor: %w: %s", err, lastLines(out))
	}
	cmd = f.command(ctx, "config", "set", "--pgdata", f.pgdata("monitor"), "postgresql.listen_addresses", "127.0.0.1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("formation: pg_autoctl config set: %w: %s", err, lastLines(out))
	}
	// One machine, loopback: detect a lost node in seconds rather than
	// pg_auto_failover's production defaults (20 s unhealthy, 30 s demote
	// timeout). docs/run-an-event.md says what to use on three machines.
	conf, err := os.OpenFile(filepath.Join(f.pgdata("monitor"), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("formation: %w", err)
	}
	defer conf.Close()
	_, err = io.WriteString(conf, "\n# loopcard db formation: a formation on one machine\n"+MonitorSettings)
	return err
}

// MonitorSettings are the monitor's failure detection settings of a
// formation on one machine.
const MonitorSettings = `pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 2000
pgautofailover.primary_demote_timeout = 3000
`

func (f *Formation) waitMonitor(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := f.State(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("formation: the monitor does not answer: %w; see %s", err, f.logFile("monitor"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (f *Formation) waitRegistered(ctx context.Context, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		nodes, err := f.State(ctx)
		if err == nil {
			for _, n := range nodes {
				if n.Name == name {
					return nil
				}
			}
		}
		if !f.running(name) {
			return fmt.Errorf("formation: %s stopped at start-up; see %s", name, f.logFile(name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("formation: %s did not register with the monitor within 60 s; see %s", name, f.logFile(name))
}

// spawn starts pg_autoctl detached, in a session of its own, logging to
// DIR/NAME.log, and records its pid.
func (f *Formation) spawn(name string, args ...string) error {
	logf, err := os.OpenFile(f.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("formation: %w", err)
	}
	defer logf.Close()
	cmd := f.command(context.Background(), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr.Setsid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("formation: start pg_autoctl for %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	// Reap it if it ends while this process lives.
	go func() { _ = cmd.Wait() }()
	f.log.Info("started pg_autoctl", "node", name, "pid", pid)
	return os.WriteFile(f.pidFile(name), []byte(strconv.Itoa(pid)), 0o644)
}

func (f *Formation) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "pg_autoctl", args...)
	cmd.Dir = f.dir
	cmd.Env = []string{
		"PATH=" + f.bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + f.dir,
		"XDG_CONFIG_HOME=" + filepath.Join(f.dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(f.dir, "share"),
		"XDG_RUNTIME_DIR=" + filepath.Join(f.dir, "run"),
		"LANG=C.UTF-8",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred}
	return cmd
}

func (f *Formation) monitorURL(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", user, f.port, db)
}

func (f *Formation) nodePort(name string) int {
	for i, n := range Nodes {
		if n == name {
			return f.port + 1 + i
		}
	}
	return f.port
}

func (f *Formation) pgdata(name string) string  { return filepath.Join(f.dir, name) }
func (f *Formation) pidFile(name string) string { return filepath.Join(f.dir, name+".pid") }
func (f *Formation) logFile(name string) string { return filepath.Join(f.dir, name+".log") }

// created reports whether pg_autoctl has a configuration for the node.
func (f *Formation) created(name string) bool {
	cfg := filepath.Join(f.dir, "config", "pg_autoctl", strings.TrimPrefix(f.pgdata(name), "/"), "pg_autoctl.cfg")
	_, err := os.Stat(cfg)
	return err == nil
}

func (f *Formation) pid(name string) (int, error) {
	b, err := os.ReadFile(f.pidFile(name))
	if err != nil {
		return 0, fmt.Errorf("formation: %s is not running", name)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("formation: bad pid file %s", f.pidFile(name))
	}
	return pid, nil
}

func (f *Formation) running(name string) bool {
	pid, err := f.pid(name)
	return err == nil && alive(pid)
}

// postmaster returns the pid of node name's PostgreSQL server, from its
// postmaster.pid, or 0.
func (f *Formation) postmaster(name string) int {
	b, err := os.ReadFile(filepath.Join(f.pgdata(name), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	if pid <= 1 || !alive(pid) {
		return 0
	}
	return pid
}

func (f *Formation) waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// FreePort returns a port P such that P, P+1 and P+2 are free on
// 127.0.0.1 now: the ports of a formation (tests and benchmarks).
func FreePort() (int, error) {
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p > 65530 {
			continue
		}
		ok := true
		for i := 1; i <= 2 && ok; i++ {
			l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+i))
			if err != nil {
				ok = false
				continue
			}
			_ = l2.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("formation: no three consecutive free ports on 127.0.0.1")
}
