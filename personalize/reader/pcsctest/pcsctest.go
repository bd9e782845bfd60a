// Package pcsctest runs a private pcscd with one vpcd virtual reader slot for
// tests, so that code under test talks to a real pcscd and libpcsclite while a
// virtual card (personalize/vpcd) sits in the slot.
//
// The pcscd server ignores PCSCLITE_CSOCK_NAME, so the harness starts it by
// socket activation: it binds a unix socket of its own and passes it as file
// descriptor 3 with LISTEN_FDS=1 and LISTEN_PID set to pcscd's PID. Clients
// find it through PCSCLITE_CSOCK_NAME, which the harness sets in the test
// process (libpcsclite reads it once, when the first context is established,
// so the socket path is fixed per process) and in Env.Environ for child
// processes.
//
// pcscd still writes /run/pcscd/pcscd.pid, so two cannot run at once: the
// harness holds an exclusive lock on LockPath while its pcscd runs, which
// serialises test packages running in parallel, and it fails when any other
// pcscd is running. A start takes a few tenths of a second and a stop, with
// SIGTERM, up to two seconds once cards have been in the slot, and every test
// package waits for the lock, so a test package should start one pcscd: call
// Main from TestMain and Shared from the tests, or Start once.
//
// vpcd opens two slots, on Port and Port+1; the harness uses the first
// (Env.Reader). Cards go in with Env.Insert, or with vpcd.Connect to
// Env.Addr from the test or another process (loopcard vcard --port).
package pcsctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/loopcard/loopcard/personalize/vpcd"
)

const (
	// LockPath is the lock every harness holds while its pcscd runs.
	LockPath = "/tmp/loopcard-pcscd.lock"
	// DriverPath is the vpcd driver from Debian's vsmartcard-vpcd package.
	DriverPath = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	// FriendlyName starts the PC/SC name of the harness's reader.
	FriendlyName = "Loopcard vpcd"

	pidFile      = "/run/pcscd/pcscd.pid"
	lockWait     = 10 * time.Minute
	readerWait   = 5 * time.Second
	stopWait     = 10 * time.Second
	presenceWait = 5 * time.Second
	startTries   = 3
)

// Env is a running private pcscd with one vpcd slot.
type Env struct {
	// Socket is pcscd's socket: PCSCLITE_CSOCK_NAME for clients.
	Socket string
	// Port is the TCP port on which vpcd waits for the card.
	Port int
	// Reader is the PC/SC name of the vpcd slot on Port.
	Reader string
	// Readers are all the readers of this pcscd: vpcd opens a second slot,
	// on Port+1, which the harness leaves empty.
	Readers []string
	// Dir holds the reader configuration and pcscd's log.
	Dir string

	pcscd    string // path of the pcscd binary
	driver   string // path of the vpcd driver
	cmd      *exec.Cmd
	exited   chan struct{}
	lock     *os.File
	stopOnce sync.Once
	stopErr  error
}

// Addr is the address a vpcd card connects to.
func (e *Env) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Port)) }

// Environ is the current environment with PCSCLITE_CSOCK_NAME pointing at
// this pcscd, for child processes (opensc-tool, pcsc_scan, loopcard).
func (e *Env) Environ() []string {
	env := os.Environ()
	out := env[:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PCSCLITE_CSOCK_NAME=") {
			out = append(out, kv)
		}
	}
	return append(out, "PCSCLITE_CSOCK_NAME="+e.Socket)
}

// Log returns what pcscd logged so far, for failure messages.
func (e *Env) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "pcscd.log"))
	return string(b)
}

// SocketPath is the pcscd socket path of this process. It is the same for
// every Env of the process, because libpcsclite reads PCSCLITE_CSOCK_NAME
// only once.
func SocketPath() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("loopcard-pcscd-%d", os.Getpid()), "pcscd.comm")
}

// Start starts a private pcscd for the test and stops it when the test and
// its subtests are done. A missing pcscd or vpcd fails the test naming the
// Debian package to install.
func Start(t testing.TB) *Env {
	t.Helper()
	e, err := StartEnv(t.Logf)
	if err != nil {
		t.Fatalf("pcsctest: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("pcsctest: %v", err)
		}
	})
	return e
}

var shared struct {
	sync.Mutex
	main bool
	env  *Env
	err  error
}

// Main runs the tests of a package that uses Shared and stops the shared
// pcscd after them. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pcsctest.Main(m) }
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pcsctest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the package's pcscd, starting it on first use; Main stops
// it after the last test. Tests that use it put a card in the slot with
// Insert and take it out again when they end (Insert does that).
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("pcsctest: Shared needs pcsctest.Main in the package's TestMain")
	}
	if shared.env == nil && shared.err == nil {
		shared.env, shared.err = StartEnv(t.Logf)
	}
	if shared.err != nil {
		t.Fatalf("pcsctest: %v", shared.err)
	}
	return shared.env
}

// StartEnv starts a private pcscd; the caller must Stop it. logf receives
// progress notes (waiting for the lock) and may be nil.
func StartEnv(logf func(format string, args ...any)) (*Env, error) {
	return startEnv(logf, "pcscd", DriverPath)
}

func startEnv(logf func(format string, args ...any), pcscdName, driver string) (*Env, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	pcscd, err := exec.LookPath(pcscdName)
	if err != nil {
		return nil, fmt.Errorf("pcscd not found: install the Debian package pcscd (scripts/setup does): %w", err)
	}
	if _, err := os.Stat(driver); err != nil {
		return nil, fmt.Errorf("vpcd driver not found: install the Debian package vsmartcard-vpcd (scripts/setup does): %w", err)
	}
	lock, err := acquireLock(logf)
	if err != nil {
		return nil, err
	}
	if err := checkNoPcscd(); err != nil {
		lock.Close()
		return nil, err
	}
	var lastErr error
	for range startTries {
		e, err := start(pcscd, driver, lock)
		if err == nil {
			return e, nil
		}
		lastErr = err
		logf("pcsctest: %v; trying another port", err)
	}
	lock.Close()
	return nil, lastErr
}

// ErrPcscdRunning means a pcscd that is not the harness's runs on the
// machine.
var ErrPcscdRunning = errors.New("another pcscd is running")

// checkNoPcscd fails when a pcscd runs. Holding the lock, the harness knows
// none is another harness's.
func checkNoPcscd() error {
	if pids := runningPcscd(); len(pids) > 0 {
		return fmt.Errorf("%w (pid %v): the test harness needs the machine's pcscd stopped, because every pcscd writes %s (systemctl stop pcscd.socket pcscd.service, or kill it)",
			ErrPcscdRunning, pids, pidFile)
	}
	return nil
}

func acquireLock(logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", LockPath, err)
	}
	deadline := time.Now().Add(lockWait)
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", LockPath, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: another test's pcscd held it for %v", LockPath, lockWait)
		}
		if !logged {
			logf("pcsctest: waiting for another test package's pcscd (lock %s)", LockPath)
			logged = true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runningPcscd lists the PIDs of live pcscd processes.
func runningPcscd() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, de := range ents {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", de.Name(), "comm"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(comm)) == "pcscd" {
			// A zombie (exited, not yet reaped) is harmless.
			if st, err := os.ReadFile(filepath.Join("/proc", de.Name(), "stat")); err == nil && zombie(st) {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// freePort returns a TCP port that nobody listens on right now and whose
// successor is free too: vpcd opens two slots, on port and port+1, and binds
// all addresses.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf(":%d", port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port, nil
		}
	}
	return 0, errors.New("find a free port: no two consecutive free ports")
}

func start(pcscd, driver string, lock *os.File) (*Env, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sock := SocketPath()
	e := &Env{Socket: sock, Port: port, Dir: filepath.Dir(sock), pcscd: pcscd, driver: driver, lock: lock}
	if err := os.RemoveAll(e.Dir); err != nil {
		return nil, fmt.Errorf("clean %s: %w", e.Dir, err)
	}
	if err := e.launch(); err != nil {
		os.RemoveAll(e.Dir)
		return nil, err
	}
	return e, nil
}

// Restart stops pcscd and starts it again with the same socket, port and
// reader, as when the machine's pcscd restarts: vpcd drops the card's
// connection, and the card must connect again. It must not run concurrently
// with Stop.
func (e *Env) Restart() error {
	if err := e.stopProcess(); err != nil {
		return err
	}
	if err := e.launch(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// launch writes the reader configuration, binds the socket and starts
// pcscd, and waits until its reader is ready.
func (e *Env) launch() error {
	if err := os.MkdirAll(filepath.Join(e.Dir, "reader.conf.d"), 0o755); err != nil {
		return fmt.Errorf("make %s: %w", e.Dir, err)
	}
	conf := fmt.Sprintf("FRIENDLYNAME %q\nDEVICENAME /dev/null:%d\nLIBPATH %s\nCHANNELID %d\n",
		FriendlyName, e.Port, e.driver, e.Port)
	if err := os.WriteFile(filepath.Join(e.Dir, "reader.conf.d", "vpcd"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write reader configuration: %w", err)
	}
	if err := os.Remove(e.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old socket: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: e.Socket, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", e.Socket, err)
	}
	// Clients of any user may connect, as to the system pcscd.
	if err := os.Chmod(e.Socket, 0o777); err != nil {
		ln.Close()
		return fmt.Errorf("chmod %s: %w", e.Socket, err)
	}
	ln.SetUnlinkOnClose(false)
	sf, err := ln.File()
	ln.Close() // the duplicate in sf keeps the socket listening
	if err != nil {
		return fmt.Errorf("socket file: %w", err)
	}
	defer sf.Close()
	logf, err := os.OpenFile(filepath.Join(e.Dir, "pcscd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create pcscd log: %w", err)
	}
	defer logf.Close()

	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -f -i -c "$1"`,
		e.pcscd, filepath.Join(e.Dir, "reader.conf.d"))
	cmd.ExtraFiles = []*os.File{sf}
	cmd.Stdout, cmd.Stderr = logf, logf
	// pcscd dies with the test process even if the test never cleans up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pcscd: %w", err)
	}
	exited := make(chan struct{})
	e.cmd, e.exited = cmd, exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	if err := e.waitReaders(); err != nil {
		e.stopProcess()
		return fmt.Errorf("%w\npcscd log:\n%s", err, e.Log())
	}
	return nil
}

// waitReaders waits until pcscd lists the vpcd slots and vpcd listens on
// its port. It sets PCSCLITE_CSOCK_NAME, which libpcsclite needs to find this
// pcscd.
func (e *Env) waitReaders() error {
	if err := os.Setenv("PCSCLITE_CSOCK_NAME", e.Socket); err != nil {
		return fmt.Errorf("set PCSCLITE_CSOCK_NAME: %w", err)
	}
	deadline := time.Now().Add(readerWait)
	for time.Now().Before(deadline) {
		select {
		case <-e.exited:
			return fmt.Errorf("pcscd exited at start: %v", e.cmd.ProcessState)
		default:
		}
		if names := listedReaders(); len(names) > 0 && listening(e.Port) {
			e.Readers = names
			// Slot 0 of the first vpcd reader: "Loopcard vpcd 00 00".
			e.Reader = names[0]
			for _, n := range names {
				if strings.HasSuffix(n, " 00 00") {
					e.Reader = n
				}
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("vpcd reader on port %d did not appear within %v", e.Port, readerWait)
}

func listedReaders() []string {
	sctx, err := scard.EstablishContext()
	if err != nil {
		return nil
	}
	defer sctx.Release()
	names, err := sctx.ListReaders()
	if err != nil {
		return nil
	}
	var ours []string
	for _, n := range names {
		if strings.HasPrefix(n, FriendlyName) {
			ours = append(ours, n)
		}
	}
	return ours
}

// listening reports whether a socket listens on TCP port port, from
// /proc/net/tcp{,6}; connecting to find out would insert a card.
func listening(port int) bool {
	want := fmt.Sprintf(":%04X ", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			// local_address is field 1, st is field 3; 0A is LISTEN.
			if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", want) && fields[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// Stop stops pcscd with SIGTERM (SIGKILL if it does not exit in time),
// removes its files and releases the lock. It is idempotent.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.stopErr = e.stopProcess()
		if err := os.RemoveAll(e.Dir); err != nil && e.stopErr == nil {
			e.stopErr = fmt.Errorf("remove %s: %w", e.Dir, err)
		}
		e.lock.Close()
	})
	return e.stopErr
}

func (e *Env) stopProcess() error {
	select {
	case <-e.exited:
		return nil
	default:
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
		return nil
	case <-time.After(stopWait):
	}
	e.cmd.Process.Kill()
	<-e.exited
	return fmt.Errorf("pcscd did not stop within %v of SIGTERM; killed", stopWait)
}

// Insert puts card into the vpcd slot and waits until pcscd sees it. When
// the test ends it takes the card out again and waits until pcscd sees the
// slot empty, so that the next test starts with an empty reader. Logs of the
// bridge go to the test log.
func (e *Env) Insert(t testing.TB, card vpcd.Card) *vpcd.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), presenceWait)
	defer cancel()
	c, err := vpcd.Connect(ctx, e.Addr(), card, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	if err != nil {
		t.Fatalf("pcsctest: insert card: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := e.WaitPresence(false); err != nil {
			t.Errorf("pcsctest: remove card: %v", err)
		}
	})
	if err := e.WaitPresence(true); err != nil {
		t.Fatalf("pcsctest: insert card: %v", err)
	}
	return c
}

// WaitPresence waits until pcscd reports a card in the slot (present true)
// or an empty slot (present false).
func (e *Env) WaitPresence(present bool) error {
	sctx, err := scard.EstablishContext()
	if err != nil {
		return fmt.Errorf("establish context: %w", err)
	}
	defer sctx.Release()
	states := []scard.ReaderState{{Reader: e.Reader, CurrentState: scard.StateUnaware}}
	deadline := time.Now().Add(presenceWait)
	for time.Now().Before(deadline) {
		err := sctx.GetStatusChange(states, time.Until(deadline))
		if err != nil && !errors.Is(err, scard.ErrTimeout) {
			return fmt.Errorf("get status change: %w", err)
		}
		ev := states[0].EventState
		is := ev&scard.StatePresent != 0
		if is == present && (!present || ev&scard.StateMute == 0) {
			return nil
		}
		states[0].CurrentState = ev &^ scard.StateChanged
	}
	return fmt.Errorf("slot %q: card present=%v not seen within %v", e.Reader, present, presenceWait)
}

// tWriter sends the bridge's log lines to the test log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
