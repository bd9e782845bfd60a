package pcscd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMissingDependencies(t *testing.T) {
	tests := []struct {
		name   string
		pcscd  string
		driver string
		want   string
	}{
		{"no pcscd", "loopcard-no-such-pcscd", DriverPath, "install the Debian package pcscd"},
		{"no vpcd driver", "pcscd", "/nonexistent/libifdvpcd.so", "install the Debian package vsmartcard-vpcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := start(Options{Logf: t.Logf}, tt.pcscd, tt.driver)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// A pcscd that is not the harness's is refused, by PID.
func TestRefusesAnotherPcscd(t *testing.T) {
	// Holding the lock, no harness of another test package starts (and
	// trips over) the impostor below.
	lock, err := acquireLock(t.Logf)
	require.NoError(t, err)
	defer lock.Close()
	require.NoError(t, checkNoPcscd(), "a pcscd already runs on this machine")

	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	b, err := os.ReadFile(sleep)
	require.NoError(t, err)
	fake := filepath.Join(t.TempDir(), "pcscd")
	require.NoError(t, os.WriteFile(fake, b, 0o755))
	cmd := exec.Command(fake, "30")
	require.NoError(t, cmd.Start())
	stopped := false
	stop := func() {
		if !stopped {
			cmd.Process.Kill()
			cmd.Wait()
			stopped = true
		}
	}
	defer stop()

	require.Eventually(t, func() bool { return slices.Contains(runningPcscd(), cmd.Process.Pid) }, 5*time.Second, 10*time.Millisecond)
	err = checkNoPcscd()
	require.ErrorIs(t, err, ErrPcscdRunning)
	require.ErrorContains(t, err, fmt.Sprint(cmd.Process.Pid))
	stop()
	require.NoError(t, checkNoPcscd())
}

// Two harnesses take turns: the second pcscd starts only when the first has
// stopped, and each leaves nothing behind.
func TestHarnessesTakeTurns(t *testing.T) {
	e1, err := Start(Options{Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { e1.Stop() })
	require.FileExists(t, e1.Socket)
	require.Equal(t, SocketPath(), e1.Socket)
	require.Equal(t, e1.Socket, os.Getenv("PCSCLITE_CSOCK_NAME"))
	require.Contains(t, e1.Environ(), "PCSCLITE_CSOCK_NAME="+e1.Socket)
	require.True(t, strings.HasPrefix(e1.Reader, FriendlyName), e1.Reader)
	require.Contains(t, e1.Readers, e1.Reader)
	require.True(t, listening(e1.Port), "vpcd listens on its port")
	require.Equal(t, fmt.Sprintf("127.0.0.1:%d", e1.Port), e1.Addr())
	require.NoError(t, e1.WaitPresence(false), "the slot starts empty")

	second := make(chan *Server, 1)
	errs := make(chan error, 1)
	go func() {
		e2, err := Start(Options{})
		errs <- err
		second <- e2
	}()
	select {
	case <-errs:
		t.Fatal("a second pcscd started beside the first")
	case <-time.After(300 * time.Millisecond):
	}
	pid := e1.cmd.Process.Pid
	require.NoError(t, e1.Stop())
	require.NoError(t, e1.Stop(), "Stop is idempotent")
	require.NoDirExists(t, e1.Dir)
	require.NotContains(t, runningPcscd(), pid, "the first pcscd is gone")

	select {
	case err := <-errs:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("the second harness did not start after the first stopped")
	}
	e2 := <-second
	t.Cleanup(func() { e2.Stop() })
	require.Equal(t, e1.Socket, e2.Socket, "one socket path per process")
	require.NoError(t, e2.WaitPresence(false))

	port, name, pid := e2.Port, e2.Reader, e2.cmd.Process.Pid
	require.NoError(t, e2.Restart())
	require.NotEqual(t, pid, e2.cmd.Process.Pid, "a new pcscd")
	require.NotContains(t, runningPcscd(), pid, "the old pcscd is gone")
	require.Equal(t, port, e2.Port)
	require.Equal(t, name, e2.Reader)
	require.NoError(t, e2.WaitPresence(false), "clients reach the new pcscd")
	require.NoError(t, e2.Stop())
	require.NoDirExists(t, e2.Dir)
}

// A chosen port must leave room for vpcd's second slot.
func TestRefusesBadPort(t *testing.T) {
	for _, port := range []int{-1, 65535, 70000} {
		_, err := Start(Options{Port: port})
		require.ErrorContains(t, err, "vpcd needs two TCP ports", "port %d", port)
	}
}
