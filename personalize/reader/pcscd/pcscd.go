// Package pcscd runs a private pcscd with one vpcd virtual reader slot, so
// that PC/SC programs (loopcard personalize, terminal pay, store sell,
// opensc-tool, pcsc_scan) talk to a real pcscd and libpcsclite while a
// virtual card (loopcard vcard, personalize/vpcd) sits in the slot. Tests use
// it through pcsctest; operators through `loopcard reader serve`.
//
// The pcscd server ignores PCSCLITE_CSOCK_NAME, so Start runs it by socket
// activation: it binds a unix socket of its own and passes it as file
// descriptor 3 with LISTEN_FDS=1 and LISTEN_PID set to pcscd's PID. Clients
// find it through PCSCLITE_CSOCK_NAME, which Start sets in this process
// (libpcsclite reads it once, when the first context is established, so the
// socket path is fixed per process) and Server.Environ gives for child
// processes.
//
// pcscd still writes /run/pcscd/pcscd.pid, so two cannot run at once: a
// Server holds an exclusive lock on LockPath while its pcscd runs, which
// serialises users, and Start fails when any other pcscd is running. A start
// takes a few tenths of a second and a stop, with SIGTERM, up to two seconds
// once cards have been in the slot.
//
// vpcd opens two slots, on Port and Port+1; Reader is the first. A card goes
// in by connecting to Server.Addr (vpcd.Connect, or loopcard vcard --port).
package pcscd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ebfe/scard"
)

const (
	// LockPath is the lock every private pcscd holds while its pcscd runs.
	LockPath = "/tmp/loopcard-pcscd.lock"
	// DriverPath is the vpcd driver from Debian's vsmartcard-vpcd package.
	DriverPath = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
	// FriendlyName starts the PC/SC name of the private reader.
	FriendlyName = "Loopcard vpcd"

	pidFile      = "/run/pcscd/pcscd.pid"
	lockWait     = 10 * time.Minute
	readerWait   = 5 * time.Second
	stopWait     = 10 * time.Second
	presenceWait = 5 * time.Second
	startTries   = 3
)

// Server is a running private pcscd with one vpcd slot.
type Server struct {
	// Socket is pcscd's socket: PCSCLITE_CSOCK_NAME for clients.
	Socket string
	// Port is the TCP port on which vpcd waits for the card.
	Port int
	// Reader is the PC/SC name of the vpcd slot on Port.
	Reader string
	// Readers are all the readers of this pcscd: vpcd opens a second slot,
	// on Port+1, which stays empty unless a second card connects.
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
func (e *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(e.Port)) }

// Environ is the current environment with PCSCLITE_CSOCK_NAME pointing at
// this pcscd, for child processes (opensc-tool, pcsc_scan, loopcard).
func (e *Server) Environ() []string {
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
func (e *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "pcscd.log"))
	return string(b)
}

// SocketPath is the pcscd socket path of this process. It is the same for
// every Server of the process, because libpcsclite reads PCSCLITE_CSOCK_NAME
// only once.
func SocketPath() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("loopcard-pcscd-%d", os.Getpid()), "pcscd.comm")
}

// Options say where a private pcscd keeps its files and which port its
// vpcd slot listens on.
type Options struct {
	// Dir holds the socket, the reader configuration and pcscd's log, and
	// is removed by Stop; empty: SocketPath's directory.
	Dir string
	// Port is the TCP port vpcd listens on for the card (Port+1 is the
	// second slot); 0: a free one.
	Port int
	// Logf receives progress notes (waiting for the lock); nil: none.
	Logf func(format string, args ...any)
}

// Start starts a private pcscd; the caller must Stop it. A missing pcscd or
// vpcd driver fails naming the Debian package to install.
func Start(opts Options) (*Server, error) {
	return start(opts, "pcscd", DriverPath)
}

func start(opts Options, pcscdName, driver string) (*Server, error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if err := opts.check(); err != nil {
		return nil, err
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
	tries := startTries
	if opts.Port != 0 {
		tries = 1 // the caller chose the port: no other will do
	}
	var lastErr error
	for range tries {
		e, err := launchOn(opts, pcscd, driver, lock)
		if err == nil {
			return e, nil
		}
		lastErr = err
		logf("pcscd: %v; trying another port", err)
	}
	lock.Close()
	return nil, lastErr
}

// ErrPcscdRunning means a pcscd that is not a Server's runs on the
// machine.
var ErrPcscdRunning = errors.New("another pcscd is running")

// checkNoPcscd fails when a pcscd runs. Holding the lock, a Server knows
// none is another Server's.
func checkNoPcscd() error {
	if pids := runningPcscd(); len(pids) > 0 {
		return fmt.Errorf("%w (pid %v): a private pcscd needs the machine's pcscd stopped, because every pcscd writes %s (systemctl stop pcscd.socket pcscd.service, or kill it)",
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
			return nil, fmt.Errorf("lock %s: another private pcscd held it for %v", LockPath, lockWait)
		}
		if !logged {
			logf("pcscd: waiting for another private pcscd to stop (lock %s)", LockPath)
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

// check refuses options that cannot work, before Start waits for the lock.
func (o Options) check() error {
	if o.Port != 0 && (o.Port < 1 || o.Port > 65534) {
		return fmt.Errorf("port %d: vpcd needs two TCP ports, PORT and PORT+1 (1-65535)", o.Port)
	}
	// Stop removes the directory: it must hold nothing of anyone else's.
	if o.Dir != "" {
		if ents, err := os.ReadDir(o.Dir); err == nil && len(ents) > 0 {
			return fmt.Errorf("%s is not empty: give a new or empty directory (it is removed when the reader stops)", o.Dir)
		}
	}
	return nil
}

func launchOn(opts Options, pcscd, driver string, lock *os.File) (*Server, error) {
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	sock := SocketPath()
	if opts.Dir != "" {
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, err
		}
		sock = filepath.Join(dir, "pcscd.comm")
	} else if err := os.RemoveAll(filepath.Dir(sock)); err != nil {
		return nil, fmt.Errorf("clean %s: %w", filepath.Dir(sock), err)
	}
	e := &Server{Socket: sock, Port: port, Dir: filepath.Dir(sock), pcscd: pcscd, driver: driver, lock: lock}
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
func (e *Server) Restart() error {
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
func (e *Server) launch() error {
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
	// pcscd dies with this process even if it never stops it.
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
func (e *Server) waitReaders() error {
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
func (e *Server) Stop() error {
	e.stopOnce.Do(func() {
		e.stopErr = e.stopProcess()
		if err := os.RemoveAll(e.Dir); err != nil && e.stopErr == nil {
			e.stopErr = fmt.Errorf("remove %s: %w", e.Dir, err)
		}
		e.lock.Close()
	})
	return e.stopErr
}

func (e *Server) stopProcess() error {
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

// WaitPresence waits until pcscd reports a card in the slot (present true)
// or an empty slot (present false).
func (e *Server) WaitPresence(present bool) error {
	return WaitPresence(e.Reader, present)
}

// WaitPresence waits until the pcscd this process talks to (see
// PCSCLITE_CSOCK_NAME) reports a card in reader (present true) or an empty
// reader (present false). A vpcd card taken out and another put in within
// one of vpcd's polls looks like one card to pcscd: who swaps cards waits
// for the empty slot in between.
func WaitPresence(reader string, present bool) error {
	sctx, err := scard.EstablishContext()
	if err != nil {
		return fmt.Errorf("establish context: %w", err)
	}
	defer sctx.Release()
	states := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
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
	return fmt.Errorf("slot %q: card present=%v not seen within %v", reader, present, presenceWait)
}
