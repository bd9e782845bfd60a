package storeclient_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/sim"
	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/ledger/pgcluster/pgtest"
	"github.com/loopcard/loopcard/softhsm"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const org = 1

type world struct {
	stack *sim.Stack
	token string
	cards []*sim.IssuedCard
}

func newWorld(t *testing.T, cards int) *world {
	t.Helper()
	ctx := context.Background()
	s, err := sim.StartStack(ctx, sim.StackConfig{DataDir: t.TempDir(), HSMURI: softhsm.NewTestToken(t), DatabaseURL: pgtest.NewDatabase(t)})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org, "Org"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org, "fest", "Fest", time.Time{}))
	require.NoError(t, s.Ledger.AddStore(ctx, org, "store-a", "Store A"))
	w := &world{stack: s}
	w.token, err = s.StaffToken(ctx, org, api.RoleStore, "store-a")
	require.NoError(t, err)
	is, err := s.IssueCards(ctx, org, "fest", cards, t.TempDir(), "", nil)
	require.NoError(t, err)
	w.cards = is.Cards
	// The store holds the batch, as its receipt in the custody log counts
	// it: it may sell these cards.
	require.NoError(t, s.Ledger.ReceiveCards(ctx, org, "store-a", is.Batch.No, cards))
	return w
}

func (w *world) client(t *testing.T, dir string, hc *http.Client) *storeclient.Client {
	t.Helper()
	if hc == nil {
		hc = w.stack.HTTP
	}
	c, err := storeclient.Open(context.Background(), storeclient.Config{StateDir: dir, URL: w.stack.URL, HTTP: hc, Org: org,
		Store: "store-a", Token: w.token})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// ledgerCard is the ledger's balance and pending loads of the card.
func (w *world) ledgerCard(t *testing.T, c *sim.IssuedCard) [2]int64 {
	t.Helper()
	info, err := w.stack.Ledger.Card(context.Background(), org, c.UID)
	require.NoError(t, err)
	return [2]int64{info.Balance, info.Pending}
}

func TestSellTopUpAndBalance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 2)
	sc := w.client(t, t.TempDir(), nil)
	c := w.cards[0]

	res, err := sc.Sell(ctx, c.Field(), 200, 1500)
	require.NoError(t, err)
	require.NotNil(t, res.Load)
	require.Equal(t, int64(1500), res.Load.Write.After)
	require.Equal(t, [2]int64{1500, 0}, w.ledgerCard(t, c), "the credit is confirmed, not pending")

	res, err = sc.TopUp(ctx, c.Field(), 250)
	require.NoError(t, err)
	require.Equal(t, uint32(2), res.Load.Write.Seq)

	b, err := sc.Balance(ctx, c.Field())
	require.NoError(t, err)
	require.Equal(t, int64(1750), b.OnCard, "the card holds the credit")
	require.Equal(t, int64(1750), b.Ledger, "card and ledger agree")
	require.Zero(t, b.Pending)
	require.Equal(t, uint32(2), b.Seq)
	require.Equal(t, c.Number, b.Number)
	require.Empty(t, sc.Open())

	// A sale without credit writes nothing; a card sold twice is refused
	// and leaves nothing open.
	res, err = sc.Sell(ctx, w.cards[1].Field(), 200, 0)
	require.NoError(t, err)
	require.Nil(t, res.Load)
	_, err = sc.Sell(ctx, c.Field(), 200, 100)
	var he *storeclient.HTTPError
	require.ErrorAs(t, err, &he)
	require.Empty(t, sc.Open())
	require.Equal(t, [2]int64{1750, 0}, w.ledgerCard(t, c))
	require.NoError(t, w.stack.Ledger.Verify(ctx))
}

// failing breaks requests whose path ends with suffix while on is set:
// with unsent they never reach the server, else the server acts on them
// and the client never learns it.
type failing struct {
	next   http.RoundTripper
	suffix string
	unsent bool
	on     atomic.Bool
	seen   atomic.Int32
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	hit := f.on.Load() && strings.HasSuffix(r.URL.Path, f.suffix)
	if hit && f.unsent {
		f.seen.Add(1)
		return nil, errors.New("network unreachable in test")
	}
	resp, err := f.next.RoundTrip(r)
	if hit {
		f.seen.Add(1)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("connection reset by test")
	}
	return resp, err
}

// TestCrashAfterCardCommitIsSettled: the card commits the load, the
// confirmation never reaches the ledger, the client goes away; the next
// time the card is presented (to a client opened again from the same state
// directory) the load is found on the card and confirmed, not written twice.
func TestCrashAfterCardCommitIsSettled(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	c := w.cards[0]
	dir := t.TempDir()
	f := &failing{next: w.stack.HTTP.Transport, suffix: "/written", unsent: true}
	f.on.Store(true)
	sc := w.client(t, dir, &http.Client{Transport: f})

	_, err := sc.Sell(ctx, c.Field(), 200, 1000)
	require.Error(t, err)
	require.Positive(t, f.seen.Load())
	require.Len(t, sc.Open(), 1)
	require.Equal(t, [2]int64{0, 1000}, w.ledgerCard(t, c), "the credit waits as a pending load")
	require.NoError(t, sc.Close())

	sc2 := w.client(t, dir, nil)
	require.Len(t, sc2.Open(), 1, "the journal survived")
	b, err := sc2.Balance(ctx, c.Field())
	require.NoError(t, err)
	require.Len(t, b.Settled, 1)
	require.True(t, b.Settled[0].Load.Again, "found on the card, not written again")
	require.Equal(t, int64(1000), b.OnCard)
	require.Equal(t, int64(1000), b.Ledger)
	require.Zero(t, b.Pending)
	require.Equal(t, uint32(1), b.Seq)
	require.Empty(t, sc2.Open())
	require.NoError(t, w.stack.Ledger.Verify(ctx))
}

// TestLostAnswerIsRetriedWithTheSameKey: the API records a top-up but its
// answer is lost; at the card's next presentation the client sends it again
// with the same idempotency key, and the ledger counts it once.
func TestLostAnswerIsRetriedWithTheSameKey(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	c := w.cards[0]
	sc0 := w.client(t, t.TempDir(), nil)
	_, err := sc0.Sell(ctx, c.Field(), 200, 0)
	require.NoError(t, err)

	dir := t.TempDir()
	f := &failing{next: w.stack.HTTP.Transport, suffix: "/topups"}
	f.on.Store(true)
	sc := w.client(t, dir, &http.Client{Transport: f})
	_, err = sc.TopUp(ctx, c.Field(), 700)
	require.Error(t, err)
	require.Equal(t, int32(11), f.seen.Load(), "sent 11 times (for about 15 s: longer than a failover) with the same key")
	require.Equal(t, [2]int64{0, 700}, w.ledgerCard(t, c), "recorded once")

	f.on.Store(false)
	res, err := sc.Settle(ctx, c.Field())
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.False(t, res[0].Load.Again)
	require.Equal(t, [2]int64{700, 0}, w.ledgerCard(t, c))
	b, err := sc.Balance(ctx, c.Field())
	require.NoError(t, err)
	require.Equal(t, b.Ledger, b.OnCard)
	require.Equal(t, int64(700), b.OnCard)
	require.NoError(t, w.stack.Ledger.Verify(ctx))
}

func TestOpenRefusesAnotherStoresState(t *testing.T) {
	w := newWorld(t, 1)
	dir := t.TempDir()
	require.NoError(t, w.client(t, dir, nil).Close())
	_, err := storeclient.Open(context.Background(), storeclient.Config{StateDir: dir, URL: w.stack.URL, HTTP: w.stack.HTTP, Org: org,
		Store: "store-b", Token: w.token})
	require.ErrorContains(t, err, "give another --state")
}
