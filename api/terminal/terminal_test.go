package terminal_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	pgtest.Main(m)
}

const org = 1

// world is a running stack with an organizer, an event, a merchant, a
// store, and cards loaded with 10.00 each.
type world struct {
	stack *sim.Stack
	hq    string
	store string
	cards []*sim.IssuedCard
	batch int64 // the cards' batch
}

func newWorld(t *testing.T, cards int, cardDir string) *world {
	t.Helper()
	ctx := context.Background()
	s, err := sim.StartStack(ctx, sim.StackConfig{DataDir: t.TempDir(), HSMURI: softhsm.NewTestToken(t), DatabaseURL: pgtest.NewDatabase(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Org"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, "fest", "Fest", time.Time{}))
	require.NoError(t, s.Ledger.AddMerchant(ctx, org, "bar", "Bar"))
	require.NoError(t, s.Ledger.AddStore(ctx, org, "store-a", "Store A"))
	w := &world{stack: s}
	w.hq, err = s.StaffToken(ctx, org, api.RoleHQ, "")
	require.NoError(t, err)
	w.store, err = s.StaffToken(ctx, org, api.RoleStore, "store-a")
	require.NoError(t, err)
	is, err := s.IssueCards(ctx, org, "fest", cards, t.TempDir(), cardDir, nil)
	require.NoError(t, err)
	w.cards, w.batch = is.Cards, is.Batch.No
	for _, c := range w.cards {
		st, err := s.CashLoad(ctx, org, w.store, "store-a", c, 1000)
		require.NoError(t, err)
		require.Equal(t, terminal.State{Balance: 1000, Seq: 1}, st)
	}
	return w
}

func (w *world) terminal(t *testing.T, id, dir string) *terminal.Terminal {
	t.Helper()
	term, err := w.stack.AddTerminal(context.Background(), w.hq, org, id, w.stack.TerminalConfig(dir, "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })
	return term
}

func (w *world) ledgerBalance(t *testing.T, c *sim.IssuedCard) int64 {
	t.Helper()
	b, err := w.stack.Ledger.CardBalance(context.Background(), org, c.UID)
	require.NoError(t, err)
	return b
}

func TestDebitUploadAndDuplicates(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2, "")
	dir := t.TempDir()
	term := w.terminal(t, "bar-1", dir)

	s1, err := term.Debit(w.cards[0].Field(), 250)
	require.NoError(t, err)
	require.Equal(t, uint32(2), s1.CardSeq)
	require.Equal(t, int64(1000), s1.BalanceBefore)
	_, err = term.Debit(w.cards[0].Field(), 300)
	require.NoError(t, err)
	_, err = term.Debit(w.cards[1].Field(), 100)
	require.NoError(t, err)
	_, err = term.Debit(w.cards[1].Field(), 5000)
	require.ErrorIs(t, err, terminal.ErrInsufficient)
	require.Equal(t, terminal.Counts{Committed: 3}, term.Queue().Counts())

	// Offline so far: the ledger has not seen a thing.
	require.Equal(t, int64(1000), w.ledgerBalance(t, w.cards[0]))

	// Keep a copy of the queue as it was before the upload: an upload whose
	// answer was lost looks like this.
	before, err := os.ReadFile(filepath.Join(dir, terminal.QueueFile))
	require.NoError(t, err)

	r, err := term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, terminal.UploadResult{Batches: 1, Accepted: 3}, r)
	require.Equal(t, int64(450), w.ledgerBalance(t, w.cards[0]))
	require.Equal(t, int64(900), w.ledgerBalance(t, w.cards[1]))
	require.Equal(t, terminal.Counts{Done: 3}, term.Queue().Counts())

	// Nothing more to send.
	r, err = term.Upload(ctx)
	require.NoError(t, err)
	require.Zero(t, r.Batches)

	// The terminal restarts with the old queue: everything goes again and
	// the ledger counts none of it twice.
	require.NoError(t, term.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, terminal.QueueFile), before, 0o600))
	term2, err := terminal.Open(w.stack.TerminalConfig(dir, "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term2.Close() })
	r, err = term2.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, terminal.UploadResult{Batches: 1, Duplicate: 3}, r)
	require.Equal(t, int64(450), w.ledgerBalance(t, w.cards[0]))
	require.NoError(t, w.stack.Ledger.Verify(ctx))
}

func TestUploadRetriesUntilServerAnswers(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	cfg := w.stack.TerminalConfig(t.TempDir(), "fest", "bar")
	term := w.terminal(t, "bar-2", cfg.StateDir)
	_, err := term.Debit(w.cards[0].Field(), 100)
	require.NoError(t, err)
	term.Close()

	// The same terminal pointed at a dead address fails with a network
	// error and keeps the transaction.
	dead := cfg
	dead.URL = "https://127.0.0.1:1"
	off, err := terminal.Open(dead)
	require.NoError(t, err)
	_, err = off.Upload(ctx)
	require.Error(t, err)
	require.Equal(t, terminal.Counts{Committed: 1}, off.Queue().Counts())
	require.NoError(t, off.Close())

	// The uploader loop backs off and gets it through once the server is
	// there.
	on, err := terminal.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { on.Close() })
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got := make(chan terminal.UploadResult, 10)
	go on.RunUploader(rctx, 50*time.Millisecond, terminal.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		func(r terminal.UploadResult, err error) {
			if err == nil && r.Batches > 0 { // every pass reports, the empty ones too
				got <- r
			}
		})
	select {
	case r := <-got:
		require.Equal(t, 1, r.Accepted)
	case <-rctx.Done():
		t.Fatal("uploader never got the transaction through")
	}
	cancel()
	require.Equal(t, int64(900), w.ledgerBalance(t, w.cards[0]))
}

// tearCard forwards APDUs to a card but fails the CommitTransaction
// exchange, before or after the card has it.
type tearCard struct {
	terminal.Card
	after bool // the card committed, the answer was lost
	armed bool
}

var errTear = errors.New("card left the field")

func (c *tearCard) Transmit(apdu []byte) ([]byte, error) {
	if c.armed && len(apdu) > 1 && apdu[1] == 0xC7 {
		c.armed = false
		if c.after {
			_, _ = c.Card.Transmit(apdu)
		}
		return nil, errTear
	}
	return c.Card.Transmit(apdu)
}

func TestTearDuringCommitIsResolvedFromTheCard(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2, "")
	term := w.terminal(t, "bar-3", t.TempDir())
	tests := []struct {
		name      string
		card      *sim.IssuedCard
		after     bool
		committed bool
		balance   int64 // the card's balance after resolution and a next debit of 100
	}{
		{"torn before the card committed", w.cards[0], false, false, 900},
		{"answer lost after the card committed", w.cards[1], true, true, 800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tearCard{Card: tt.card.Field(), after: tt.after, armed: true}
			_, err := term.Debit(tc, 100)
			require.ErrorIs(t, err, terminal.ErrUncertain)
			pend := term.Queue().PendingFor(tt.card.UID)
			require.Len(t, pend, 1)
			for _, s := range term.Queue().Unsent(10) {
				require.NotEqual(t, pend[0].ID, s.ID, "an unresolved transaction is never uploaded")
			}

			// Presented again: resolved from the card, then a new debit.
			s, err := term.Debit(tt.card.Field(), 100)
			require.NoError(t, err)
			require.Equal(t, tt.balance, s.BalanceAfter)
			require.Empty(t, term.Queue().PendingFor(tt.card.UID))
		})
	}
	r, err := term.Upload(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, r.Accepted, "two debits and the committed torn one")
	require.Equal(t, int64(900), w.ledgerBalance(t, w.cards[0]))
	require.Equal(t, int64(800), w.ledgerBalance(t, w.cards[1]))
	alerts, err := w.stack.Ledger.Alerts(ctx, org)
	require.NoError(t, err)
	require.Empty(t, alerts, "the card chains join up")
}

func TestSessionKeyRenewal(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	cfg := w.stack.TerminalConfig(t.TempDir(), "fest", "bar")
	term := w.terminal(t, "bar-s", cfg.StateDir)
	first := term.SessionKeyExpires()
	require.False(t, first.IsZero())

	// A fresh key is kept; one that expires within RenewBefore is renewed.
	require.NoError(t, term.EnsureSessionKey(ctx))
	require.Equal(t, first, term.SessionKeyExpires())
	term.Close()
	cfg.RenewBefore = 24 * time.Hour
	eager, err := terminal.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { eager.Close() })
	require.Equal(t, first, eager.SessionKeyExpires(), "the stored key is loaded at open")
	time.Sleep(1100 * time.Millisecond) // expiries have whole seconds
	require.NoError(t, eager.EnsureSessionKey(ctx))
	require.True(t, eager.SessionKeyExpires().After(first))

	// HQ revokes the terminal's session keys: the next upload is refused,
	// the terminal fetches a new key and uploads.
	_, err = eager.Debit(w.cards[0].Field(), 100)
	require.NoError(t, err)
	require.NoError(t, staffDelete(ctx, w, "/v1/hq/terminals/bar-s/session-keys"))
	r, err := eager.UploadOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, r.Accepted)

	// Offline with an expired key, the terminal takes no payment.
	cfg.Now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	cfg.URL = "https://127.0.0.1:1"
	eager.Close()
	late, err := terminal.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { late.Close() })
	require.Error(t, late.EnsureSessionKey(ctx))
	_, err = late.Debit(w.cards[0].Field(), 100)
	require.ErrorIs(t, err, terminal.ErrNoSessionKey)
}

func staffDelete(ctx context.Context, w *world, path string) error {
	req, err := http.NewRequestWithContext(ctx, "DELETE", w.stack.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+w.hq)
	resp, err := w.stack.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("DELETE %s: %d", path, resp.StatusCode)
	}
	return nil
}

// TestNoSecretsInLogsOrErrors runs a terminal through enrolment, payments,
// a tear, a refused payment and an upload with a debug logger, and looks
// for its private keys and the event debit key in every log line and error.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	var logs bytes.Buffer
	cfg := w.stack.TerminalConfig(t.TempDir(), "fest", "bar")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	term, err := w.stack.AddTerminal(ctx, w.hq, org, "bar-x", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { term.Close() })
	var errs []string
	record := func(err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err))
		}
	}
	_, err = term.Debit(w.cards[0].Field(), 100)
	require.NoError(t, err)
	_, err = term.Debit(&tearCard{Card: w.cards[0].Field(), armed: true}, 100)
	require.ErrorIs(t, err, terminal.ErrUncertain)
	record(err)
	_, err = term.Debit(w.cards[0].Field(), 1_000_000)
	require.ErrorIs(t, err, terminal.ErrInsufficient)
	record(err)
	_, err = term.Upload(ctx)
	require.NoError(t, err)
	require.NoError(t, term.RenewSessionKey(ctx))
	require.NotEmpty(t, logs.String(), "the terminal logs what it does")

	var id struct {
		SignSeed []byte `json:"sign_seed"`
		KexKey   []byte `json:"kex_key"`
	}
	b, err := os.ReadFile(filepath.Join(cfg.StateDir, terminal.IdentityFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &id))
	ev, _, err := w.stack.HSM.EventDebitKey(ctx, keys.Label{Name: keys.AppDebit}, org, "fest")
	require.NoError(t, err)
	evb := ev.Bytes()
	ev.Destroy()
	haystack := logs.String() + strings.Join(errs, "\n")
	for name, secret := range map[string][]byte{"signing seed": id.SignSeed, "key-agreement key": id.KexKey, "event debit key": evb} {
		require.Len(t, secret, map[string]int{"signing seed": 32, "key-agreement key": 32, "event debit key": 16}[name])
		for _, enc := range []string{hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
			base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret), fmt.Sprint(secret)} {
			require.NotContains(t, haystack, enc, name)
		}
	}
	st, err := os.Stat(filepath.Join(cfg.StateDir, terminal.IdentityFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}
