package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/reader/pcsc"
	"github.com/loopcard/loopcard/personalize/reader/pcsctest"
)

// childEnv makes the test binary run the CLI instead of the tests, so that
// a test can run `loopcard` as a real process and signal it.
const childEnv = "LOOPCARD_TEST_RUN_CLI"

func init() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(run(os.Args, os.Stdout, os.Stderr))
	}
}

func TestVcardBadInput(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.json")
	require.NoError(t, os.WriteFile(corrupt, []byte("{not json"), 0o600))
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no port", []string{}, 1, `Required flag "port" not set`},
		{"port out of range", []string{"--port", "70000"}, 2, "vcard: --port 70000 is not a TCP port (1-65535)"},
		{"zero port", []string{"--port", "0"}, 2, "is not a TCP port"},
		{"short UID", []string{"--port", "1", "--uid", "0411"}, 2, `vcard: --uid: want 14 hex digits starting with 04 (a 7-byte NXP UID), got "0411"`},
		{"not hex", []string{"--port", "1", "--uid", "04xx2233445566"}, 2, "want 14 hex digits"},
		{"not NXP", []string{"--port", "1", "--uid", "05112233445566"}, 2, "starting with 04"},
		{"stray argument", []string{"--port", "1", "extra"}, 2, `vcard: unexpected argument "extra"`},
		{"corrupt state", []string{"--port", "1", "--state", corrupt}, 1, "(delete the file to start from a blank card)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"loopcard", "--data-dir", dir, "vcard"}, tt.args...)
			code := run(args, &stdout, &stderr)
			require.Equal(t, tt.code, code, "stderr: %s", stderr.String())
			require.Contains(t, stderr.String(), tt.msg)
		})
	}
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startVcard runs `loopcard vcard` as a child process; stop sends SIGTERM and
// returns its log and exit error.
func startVcard(t *testing.T, args ...string) (stop func() (string, error)) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, append([]string{"--data-dir", t.TempDir(), "vcard"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	var result error
	stop = func() (string, error) {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case result = <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Errorf("loopcard vcard did not stop within 10 s of SIGTERM")
			}
		})
		return logs.String(), result
	}
	t.Cleanup(func() { stop() })
	return stop
}

// `loopcard vcard --port` as a real process: pcscd sees its card in the vpcd
// slot, a DESFire client talks to it through PC/SC, it comes back when pcscd
// restarts, --state keeps the card across runs, and SIGTERM takes the card
// out and ends the process cleanly.
func TestVcardProcess(t *testing.T) {
	env := pcsctest.Start(t)
	state := filepath.Join(t.TempDir(), "card.json")
	uid := []byte{0x04, 0x5A, 0x11, 0x22, 0x33, 0x44, 0x80}
	args := []string{"--port", strconv.Itoa(env.Port), "--uid", "045A1122334480", "--state", state}
	const aid desfire.AID = 0x4C5043

	withCard := func(t *testing.T, f func(c *pcsc.Card, d *desfire.Card)) {
		t.Helper()
		require.NoError(t, env.WaitPresence(true), "the card never showed up in the slot")
		r, err := pcsc.Open(env.Reader)
		require.NoError(t, err)
		defer r.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := r.Wait(ctx)
		require.NoError(t, err)
		defer c.Close()
		f(c, desfire.New(c))
	}

	stop := startVcard(t, args...)
	withCard(t, func(c *pcsc.Card, d *desfire.Card) {
		got, err := c.UID()
		require.NoError(t, err)
		require.Equal(t, uid, got)
		v, err := d.GetVersion()
		require.NoError(t, err)
		require.Equal(t, [7]byte(uid), v.UID)
		require.NoError(t, d.AuthenticateLegacy(0, desfire.DefaultDESKey()))
		require.NoError(t, d.CreateApplication(aid, 0x0B, 4, desfire.KeyAES))
	})
	// pcscd restarts: the card comes back into the slot by itself.
	require.NoError(t, env.Restart())
	withCard(t, func(c *pcsc.Card, d *desfire.Card) {
		got, err := c.UID()
		require.NoError(t, err)
		require.Equal(t, uid, got)
	})
	logs, err := stop()
	require.NoError(t, err, "exit status after SIGTERM; log:\n%s", logs)
	require.NoError(t, env.WaitPresence(false), "the card is still in the slot after SIGTERM")
	for _, want := range []string{"virtual card ready", "uid=045A1122334480", "card inserted", "vpcd disconnected", "virtual card stopped"} {
		require.Contains(t, logs, want)
	}
	require.FileExists(t, state)

	// A second run of the same card remembers the application.
	stop = startVcard(t, args...)
	withCard(t, func(c *pcsc.Card, d *desfire.Card) {
		aids, err := d.GetApplicationIDs()
		require.NoError(t, err)
		require.Equal(t, []desfire.AID{aid}, aids)
	})
	logs, err = stop()
	require.NoError(t, err, "log:\n%s", logs)
}
