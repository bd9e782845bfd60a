// Package pgcluster runs a private PostgreSQL server in a directory of its
// own: the embedded default database of the loopcard CLI and the database of
// every test.
//
// The server listens on a unix socket in the cluster directory only (no TCP
// port, so clusters never clash). initdb and postgres refuse to run as root;
// when the caller is root they run as the "postgres" system user, which must
// be able to reach the cluster directory.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotInstalled is returned when no PostgreSQL server binaries are found.
var ErrNotInstalled = errors.New("PostgreSQL server not found: install the Debian package postgresql (scripts/setup)")

// Options configure a cluster.
type Options struct {
	// Dir holds the cluster: data/ for the database files, the unix socket
	// and the server log. It is created when missing.
	Dir string
	// Durable keeps fsync and synchronous_commit on, as production does.
	// Tests that do not measure durability leave it off for speed: a crash
	// of the test process never loses data, only a crash of the machine would.
	Durable bool
	// Settings are extra server settings (name → value), passed as -c flags.
	Settings map[string]string
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir    string
	cmd    *exec.Cmd // nil when attached to a server started elsewhere
	exited chan struct{}
	log    *slog.Logger
}

// Start initialises the cluster directory on first use and starts the
// server, or attaches to a server already running in that directory (which
// Stop then leaves running).
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgcluster: no directory given")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	// A unix socket path must fit in 107 bytes.
	if n := len(filepath.Join(dir, ".s.PGSQL.5432")); n > 100 {
		return nil, fmt.Errorf("pgcluster: directory path %q is too long for a unix socket (%d bytes): choose a shorter data directory", dir, n)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		if err := checkReachable(dir, cred); err != nil {
			return nil, err
		}
	}
	c := &Cluster{dir: dir, log: log}
	if c.ping(ctx) == nil {
		log.Info("attached to running PostgreSQL", "dir", dir)
		return c, nil
	}

	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		start := time.Now()
		_ = os.RemoveAll(data) // a half-made data directory from an interrupted initdb
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgcluster: initdb: %w: %s", err, lastLine(out))
		}
		log.Info("initialised PostgreSQL cluster", "dir", dir, "took", time.Since(start).Round(time.Millisecond))
	}

	args := []string{"-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories=" + dir,
		"-c", "logging_collector=off", "-c", "max_connections=200"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+opts.Settings[k])
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	defer logFile.Close()
	if cred != nil {
		_ = logFile.Chown(int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: a test binary that dies without cleanup takes its server
	// with it instead of leaving it running. Setpgid: a Ctrl-C at the
	// terminal reaches loopcard, which then stops the server in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.exited) }()

	start := time.Now()
	for {
		if err := c.ping(ctx); err == nil {
			break
		}
		select {
		case <-c.exited:
			logPath := filepath.Join(dir, "server.log")
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgcluster: postgres exited at start-up: %s (see %s)", lastLine(out), logPath)
		case <-ctx.Done():
			_ = c.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > 30*time.Second {
			_ = c.Stop()
			return nil, fmt.Errorf("pgcluster: postgres did not accept connections within 30 s; see %s", filepath.Join(dir, "server.log"))
		}
	}
	log.Info("started PostgreSQL", "dir", dir, "pid", cmd.Process.Pid, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// CPUTime returns the processor time used so far by the server this
// Cluster started and all its processes, ended ones included; zero when it
// attached to a server started elsewhere. Benchmarks use it to tell the
// server's share of the work from the client's.
func (c *Cluster) CPUTime() time.Duration {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	pid := c.cmd.Process.Pid
	// The postmaster's own time and that of its ended children (cutime,
	// cstime), plus the live children's own.
	total := procCPU(pid, true)
	for _, p := range childPIDs(pid) {
		total += procCPU(p, false)
	}
	return total
}

// procCPU reads a process's user and system time from /proc/p/stat, with
// its waited-for children's when children is set.
func procCPU(p int, children bool) time.Duration {
	f := statFields(p)
	// f[0] is the state, field 3 of stat(5): utime (field 14) is f[11],
	// then stime, cutime and cstime.
	if len(f) < 15 {
		return 0
	}
	n := 2
	if children {
		n = 4
	}
	var ticks int64
	for _, v := range f[11 : 11+n] {
		t, _ := strconv.ParseInt(v, 10, 64)
		ticks += t
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc times: 100 on every Linux
// platform Go supports.
const clockTicks = 100

// Dir is the cluster directory, which is also the socket directory.
func (c *Cluster) Dir() string { return c.dir }

// URL returns a pgx connection URL for database dbname over the unix socket.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", dbname, c.dir)
}

// CreateDatabase creates database name if it does not exist.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return nil
}

// Stop shuts a server that Start started down (fast shutdown: open
// transactions roll back, committed ones are kept). It does nothing for a
// server Start only attached to.
func (c *Cluster) Stop() error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("pgcluster: postgres did not stop within 30 s and was killed")
	}
	c.log.Info("stopped PostgreSQL", "dir", c.dir)
	c.cmd = nil
	return nil
}

// Kill stops the server abruptly, as a machine crash would: SIGKILL to the
// postmaster and every backend, for recovery tests.
func (c *Cluster) Kill() {
	if c.cmd == nil {
		return
	}
	pid := c.cmd.Process.Pid
	// Backends run in sessions of their own (PostgreSQL calls setsid), so
	// they are found by parent, not by process group.
	children := childPIDs(pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for _, p := range children {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	<-c.exited
	// A backend still attached to the shared memory segment would make the
	// next start refuse ("pre-existing shared memory block is still in use").
	for _, p := range children {
		for i := 0; i < 500 && alive(p); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	c.cmd = nil
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(p); ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether process p exists and is not a zombie.
func alive(p int) bool {
	_, state := procStat(p)
	return state != 0 && state != 'Z'
}

// statFields returns the fields of /proc/p/stat after the command name,
// from the state (field 3 of stat(5)) on; nil if p is gone.
func statFields(p int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
	if err != nil {
		return nil
	}
	// The command name may hold spaces and parentheses: parse after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	return strings.Fields(string(b[i+1:]))
}

// procStat returns the parent PID and state letter from /proc/p/stat.
func procStat(p int) (ppid int, state byte) {
	f := statFields(p)
	if len(f) < 2 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0]
}

func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// binDir finds the newest PostgreSQL server installation.
func binDir() (string, error) {
	if d := os.Getenv("LOOPCARD_PG_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			return "", fmt.Errorf("%w (LOOPCARD_PG_BINDIR=%s has no postgres)", ErrNotInstalled, d)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(matches) == 0 {
		if p, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", ErrNotInstalled
	}
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	return filepath.Dir(matches[0]), nil
}

func pgMajor(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// serverCredential returns the credential to run initdb and postgres with:
// nil for an ordinary user, the postgres system user for root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("pgcluster: running as root needs the postgres system user: install the Debian package postgresql")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// checkReachable reports a clear error when the postgres user cannot reach
// dir because a parent directory (such as /root) is closed to others.
func checkReachable(dir string, cred *syscall.Credential) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		ok := fi.Mode().Perm()&0o001 != 0 ||
			(st.Uid == cred.Uid && fi.Mode().Perm()&0o100 != 0) ||
			(st.Gid == cred.Gid && fi.Mode().Perm()&0o010 != 0)
		if !ok {
			return fmt.Errorf("pgcluster: the postgres user cannot enter %s, so PostgreSQL cannot use %s: choose a data directory outside it (for example /var/lib/loopcard)", p, dir)
		}
		if p == "/" {
			return nil
		}
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// BinDir returns the directory of the newest PostgreSQL server binaries
// (initdb, postgres, pg_ctl), or ErrNotInstalled.
func BinDir() (string, error) { return binDir() }

// ServerCredential returns the credential PostgreSQL's programs must run
// with: nil for an ordinary user, the postgres system user when the caller
// is root (initdb and postgres refuse to run as root).
func ServerCredential() (*syscall.Credential, error) { return serverCredential() }
