// Package pcsctest gives tests a private pcscd with one vpcd virtual reader
// slot (package pcscd), so that code under test talks to a real pcscd and
// libpcsclite while a virtual card (personalize/vpcd) sits in the slot.
//
// Every test package waits for the one lock all private pcscds share (see
// package pcscd), so a test package should start one pcscd: call Main from
// TestMain and Shared from the tests, or Start once. Cards go in with
// Env.Insert, or with vpcd.Connect to Env.Addr from the test or another
// process (loopcard vcard --port).
package pcsctest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loopcard/loopcard/personalize/reader/pcscd"
	"github.com/loopcard/loopcard/personalize/vpcd"
)

// presenceWait bounds how long Insert waits for pcscd to see a card.
const presenceWait = 5 * time.Second

// Env is a test's running private pcscd with one vpcd slot.
type Env struct {
	*pcscd.Server
}

// StartEnv starts a private pcscd on a free port; the caller must Stop it.
// logf receives progress notes and may be nil.
func StartEnv(logf func(format string, args ...any)) (*Env, error) {
	s, err := pcscd.Start(pcscd.Options{Logf: logf})
	if err != nil {
		return nil, err
	}
	return &Env{s}, nil
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

// tWriter sends the bridge's log lines to the test log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
