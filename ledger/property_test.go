package ledger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// TestRandomOperations runs random sequences of money operations against a
// model and checks the ledger's invariants and every balance after each step.
func TestRandomOperations(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runRandomOperations(t, seed, 60) })
	}
}

type modelCard struct {
	*card
	ledger int64 // what the ledger must hold
	status string
}

func runRandomOperations(t *testing.T, seed uint64, steps int) {
	l := newLedger(t)
	withSealer(t, l)
	// Batches of four or more are written with COPY, smaller ones with
	// INSERT, so that random steps mix both.
	l.copyMinRows = 4
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, seed*7919))
	terms := []*terminal{newTerminal(t, l, "t-a", "bar"), newTerminal(t, l, "t-b", "food")}
	require.NoError(t, l.AddStore(ctx, org, "store-1", "Store"))
	var cards []*modelCard
	var uids [][]byte
	for i := range 6 {
		c := &modelCard{card: newCard(i + 1), status: "active"}
		cards = append(cards, c)
		uids = append(uids, c.uid)
	}
	require.NoError(t, l.RegisterCards(ctx, org, "fest", uids))
	var uploaded [][]byte
	merchants := map[string]int64{}
	pay := func(c *modelCard, tm *terminal) ([]byte, int64) {
		amt := 1 + r.Int64N(c.bal)
		raw := tm.pay(t, c.card, amt)
		return raw, amt
	}
	active := func() *modelCard {
		c := cards[r.IntN(len(cards))]
		if c.status != "active" {
			return nil
		}
		return c
	}
	for step := range steps {
		op := r.IntN(8)
		c := active()
		switch {
		case op == 0 && c != nil: // cash top-up written to the card
			amt := 1 + r.Int64N(5000)
			c.seq++
			cashLoad(t, l, org, "store-1", c.uid, amt, &CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + amt})
			c.bal += amt
			c.ledger += amt
		case op == 1 && c != nil && c.bal > 0: // one debit online
			tm := terms[r.IntN(2)]
			raw, amt := pay(c, tm)
			res, err := l.Submit(ctx, org, raw)
			require.NoError(t, err)
			require.Equal(t, Accepted, res.Status, "step %d", step)
			uploaded = append(uploaded, raw)
			c.ledger -= amt
			merchants[tm.merchant] += amt
		case op == 2 && len(uploaded) > 0: // a late duplicate
			res, err := l.Upload(ctx, org, [][]byte{uploaded[r.IntN(len(uploaded))]})
			require.NoError(t, err)
			require.Equal(t, Duplicate, res[0].Status)
		case op == 3 && len(uploaded) > 0: // same id, other content
			p, err := terminaltx.Parse(uploaded[r.IntN(len(uploaded))])
			require.NoError(t, err)
			x := p.Tx
			x.Amount, x.BalanceAfter = x.Amount+1, x.BalanceAfter-1
			if x.BalanceAfter < 0 {
				x.BalanceBefore++
				x.BalanceAfter++
			}
			tm := terms[0]
			if x.Terminal != tm.id {
				tm = terms[1]
			}
			s, err := terminaltx.Sign(&x, tm.key)
			require.NoError(t, err)
			res, err := l.Upload(ctx, org, [][]byte{s.Bytes()})
			require.NoError(t, err)
			require.Equal(t, Rejected, res[0].Status)
			require.ErrorIs(t, res[0].Err, ErrConflict)
		case op == 4 && c != nil: // online top-up, then written to the card
			amt := 1 + r.Int64N(3000)
			e := payment.Event{ID: fmt.Sprintf("evt-%d", step), Type: payment.TypePaymentSucceeded, Payment: fmt.Sprintf("pi-%d", step),
				Org: org, Card: terminaltx.CardHex(c.uid), Amount: amt}
			require.NoError(t, l.RecordPayment(ctx, "testpay", e))
			require.NoError(t, l.RecordPayment(ctx, "testpay", e))
			loads, err := l.PendingLoads(ctx, org, c.uid)
			require.NoError(t, err)
			require.Len(t, loads, 1)
			requireInvariants(t, l)
			c.seq++
			require.NoError(t, l.LoadPending(ctx, org, c.uid, loads[0].ID, &CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + amt}))
			c.bal += amt
			c.ledger += amt
		case op == 5: // a shuffled batch over several cards, uploaded twice
			var batch [][]byte
			for _, mc := range cards {
				if mc.status == "active" && mc.bal > 0 && r.IntN(2) == 0 {
					tm := terms[r.IntN(2)]
					raw, amt := pay(mc, tm)
					batch = append(batch, raw)
					mc.ledger -= amt
					merchants[tm.merchant] += amt
				}
			}
			r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			res, err := l.Upload(ctx, org, append(batch, batch...))
			require.NoError(t, err)
			for i, x := range res {
				if i < len(batch) {
					require.Equal(t, Accepted, x.Status)
				} else {
					require.Equal(t, Duplicate, x.Status)
				}
			}
			uploaded = append(uploaded, batch...)
		case op == 6 && c != nil && c.bal > 1: // a clone spends too
			clone := *c.card
			orig, amt := pay(c, terms[0])
			cl, _ := pay(&modelCard{card: &clone}, terms[1])
			res, err := l.Upload(ctx, org, [][]byte{orig, cl})
			require.NoError(t, err)
			require.ElementsMatch(t, []Status{Accepted, Held}, []Status{res[0].Status, res[1].Status})
			uploaded = append(uploaded, orig, cl)
			// Whichever the ledger saw first (card order, then upload order) is posted.
			if res[0].Status == Accepted {
				c.ledger -= amt
				merchants[terms[0].merchant] += amt
			} else {
				p, _ := terminaltx.Parse(cl)
				c.ledger -= p.Amount
				merchants[terms[1].merchant] += p.Amount
			}
			c.status = "blocked"
		case op == 7 && c != nil && c.ledger > 0: // refund the rest
			_, amt, err := l.RequestRefund(ctx, org, RefundRequest{Card: c.uid, Holder: "Holder", IBAN: "DE89370400440532013000"})
			require.NoError(t, err)
			require.Equal(t, c.ledger, amt)
			p, err := l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
			require.NoError(t, err)
			require.Equal(t, amt, p.Total, "fixed at payout")
			c.ledger = 0
			c.status = "refunded"
		default:
			continue
		}
		requireInvariants(t, l)
		for _, mc := range cards {
			info, err := l.Card(ctx, org, mc.uid)
			require.NoError(t, err)
			require.Equal(t, mc.ledger, info.Balance, "step %d card %x", step, mc.uid)
			require.Equal(t, mc.status, info.Status, "step %d card %x", step, mc.uid)
		}
		for m, v := range merchants {
			b, err := l.Balance(ctx, org, Merchant, m)
			require.NoError(t, err)
			require.Equal(t, v, b)
		}
	}
}
