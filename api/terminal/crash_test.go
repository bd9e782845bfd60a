package terminal_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/personalize/station"
	"github.com/loopcard/loopcard/personalize/vcard"
)

const crashChildEnv = "LOOPCARD_TERMINAL_CRASH_CHILD"

// crashChild is a terminal process that debits the cards whose state files
// are in the card directory, uploading now and then, until it is killed.
func crashChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "crash child:", err); return 3 }
	pem, err := os.ReadFile(os.Getenv("LOOPCARD_CA"))
	if err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	term, err := terminal.Open(terminal.Config{StateDir: os.Getenv(crashChildEnv), URL: os.Getenv("LOOPCARD_URL"), HTTP: hc, Event: "fest", Merchant: "bar"})
	if err != nil {
		return fail(err)
	}
	files, err := filepath.Glob(filepath.Join(os.Getenv("LOOPCARD_CARDS"), "*.json"))
	if err != nil || len(files) == 0 {
		return fail(fmt.Errorf("no cards: %v", err))
	}
	// A card is left alone once its balance is known to be at most
	// reserve: however fast this machine pays, every card keeps enough for
	// the parent's final payment (each of the 5 restarts may take up to
	// 20 cents from a card before it learns the balance again).
	const reserve = 200
	known := map[string]int64{}
	for n := 0; ; n++ {
		f := files[rand.IntN(len(files))]
		if b, ok := known[f]; ok && b <= reserve {
			if len(known) == len(files) && allBelow(known, reserve) {
				time.Sleep(10 * time.Millisecond) // nothing left to spend: wait for the kill
			}
			continue
		}
		vc, err := vcard.New(vcard.Options{StatePath: f})
		if err != nil {
			return fail(err)
		}
		s, err := term.Debit(&station.VirtualCard{Card: vc}, int64(1+rand.IntN(20)))
		if err != nil && !errors.Is(err, terminal.ErrInsufficient) {
			return fail(err)
		}
		if err == nil {
			known[f] = s.BalanceAfter
		}
		if n%7 == 0 {
			_, _ = term.UploadOnce(context.Background())
		}
	}
}

func allBelow(known map[string]int64, limit int64) bool {
	for _, b := range known {
		if b > limit {
			return false
		}
	}
	return true
}

// TestKillDuringPaymentsLosesNothing kills a terminal process at random
// moments while it debits cards (whose state survives in files, as a real
// card keeps its own), restarts it, and at the end checks, card by card,
// that the ledger holds exactly what the card paid.
func TestKillDuringPaymentsLosesNothing(t *testing.T) {
	ctx := context.Background()
	cardDir := t.TempDir()
	w := newWorld(t, 4, cardDir)
	dir := t.TempDir()
	term := w.terminal(t, "bar-k", dir)
	require.NoError(t, term.Close())

	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "LOOPCARD_CARDS="+cardDir,
			"LOOPCARD_URL="+w.stack.URL, "LOOPCARD_CA="+w.stack.CAFile)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(400+rand.IntN(500)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		err := cmd.Wait()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "round %d: the child must die by the signal, not exit", round)
		require.Equal(t, syscall.SIGKILL, ee.Sys().(syscall.WaitStatus).Signal(), "round %d", round)
	}

	// The terminal comes back: each card is presented once more (which
	// resolves what the kills left open) and pays 1 cent; then everything
	// is uploaded.
	term, err := terminal.Open(w.stack.TerminalConfig(dir, "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })
	type last struct {
		seq   uint32
		after int64
	}
	lasts := map[string]last{}
	for _, c := range w.cards {
		vc, err := vcard.New(vcard.Options{StatePath: c.StatePath})
		require.NoError(t, err)
		s, err := term.Debit(&station.VirtualCard{Card: vc}, 1)
		require.NoError(t, err)
		lasts[c.UIDHex()] = last{s.CardSeq, s.BalanceAfter}
	}
	require.Zero(t, term.Queue().Counts().Pending)
	_, err = term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 0, term.Queue().Counts().Committed)

	total := 0
	for _, c := range w.cards {
		l := lasts[c.UIDHex()]
		info, err := w.stack.Ledger.Card(ctx, org, c.UID)
		require.NoError(t, err)
		require.Equal(t, "active", info.Status)
		require.Equal(t, l.after, info.Balance, "card %s: the ledger holds what the card holds", c.UIDHex())
		require.Equal(t, int64(l.seq), info.LastSeq)
		var n int
		require.NoError(t, w.stack.Pool.QueryRow(ctx, `SELECT count(*) FROM terminal_txs WHERE org_id = $1 AND card_id = $2`, org, c.UID).Scan(&n))
		require.Equal(t, int(l.seq)-1, n, "card %s: one transaction per card sequence after the load", c.UIDHex())
		total += n
	}
	require.Greater(t, total, len(w.cards)*3, "the children took payments before they were killed")
	alerts, err := w.stack.Ledger.Alerts(ctx, org)
	require.NoError(t, err)
	require.Empty(t, alerts)
	require.NoError(t, w.stack.Ledger.Verify(ctx))
	t.Logf("%d transactions over 5 kills", total)
}
