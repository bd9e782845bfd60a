package ledger

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

func TestMoneyInAndOut(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	now := time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	require.NoError(t, l.AddEvent(ctx, org, "fest", "Festival", now.Add(30*24*time.Hour)))
	require.NoError(t, l.AddStore(ctx, org, "gate", "Gate"))
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b := newCard(1), newCard(2)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{a.uid, b.uid}))
	require.NoError(t, l.ReceiveCards(ctx, org, "gate", 1, 50))

	// Card sale: 5.00 deposit and 20.00 credit, paid in cash.
	a.seq, a.bal = 1, 2000
	saleID, err := l.SellCard(ctx, org, CardSale{Store: "gate", Batch: 1, Slot: 1, Card: a.uid, Deposit: 500, Credit: 2000})
	require.NoError(t, err)
	require.NoError(t, l.LoadPending(ctx, org, a.uid, saleID, &CardWrite{Seq: 1, Before: 0, After: 2000}))
	_, err = l.SellCard(ctx, org, CardSale{ID: saleID, Store: "gate", Batch: 1, Slot: 1, Card: a.uid, Deposit: 500, Credit: 2000})
	require.NoError(t, err, "same request again")
	_, err = l.SellCard(ctx, org, CardSale{Store: "gate", Batch: 1, Slot: 1, Card: a.uid, Deposit: 500})
	require.ErrorIs(t, err, ErrExists)
	_, err = l.SellCard(ctx, org, CardSale{Store: "gate", Batch: 1, Slot: 2, Card: b.uid, Deposit: 500})
	require.NoError(t, err)

	// Cash top-up, idempotent by request id.
	id := l.newID()
	for range 2 {
		_, err = l.TopUpCash(ctx, org, CashTopUp{ID: id, Store: "gate", Card: b.uid, Amount: 1000})
		require.NoError(t, err)
	}
	_, err = l.TopUpCash(ctx, org, CashTopUp{ID: id, Store: "gate", Card: b.uid, Amount: 999})
	require.ErrorIs(t, err, ErrConflict)
	require.NoError(t, l.LoadPending(ctx, org, b.uid, id, &CardWrite{Seq: 1, Before: 0, After: 1000}))
	b.seq, b.bal = 1, 1000

	// Online top-up through the provider's signed webhook.
	secret := payment.NewSecret([]byte("whsec_x"))
	h := &payment.Handler{Secret: secret, Now: func() time.Time { return now }, Record: func(r *http.Request, e payment.Event) error {
		return l.RecordPayment(r.Context(), "testpay", e)
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	prov := &paytest.Provider{Secret: secret, URL: srv.URL, Now: func() time.Time { return now }}
	ev := payment.Event{ID: "evt_1", Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: org, Card: terminaltx.CardHex(a.uid), Amount: 1500, Currency: "EUR"}
	for range 2 { // delivered twice
		code, err := prov.Deliver(ctx, ev)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	ev2 := ev
	ev2.ID = "evt_2" // the same payment in another event
	code, err := prov.Deliver(ctx, ev2)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	loads, err := l.PendingLoads(ctx, org, a.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, int64(1500), loads[0].Amount)
	require.Equal(t, "online", loads[0].Channel)
	bal, err := l.Balance(ctx, org, PendingLoads, "")
	require.NoError(t, err)
	require.Equal(t, int64(1500), bal)
	cb, err := l.CardBalance(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, int64(2000), cb, "a pending load is not on the card yet")
	require.ErrorIs(t, l.LoadPending(ctx, org, a.uid, loads[0].ID, &CardWrite{Seq: 2, Before: 2000, After: 3000}), ErrInvalid)
	for range 2 {
		require.NoError(t, l.LoadPending(ctx, org, a.uid, loads[0].ID, &CardWrite{Seq: 2, Before: 2000, After: 3500}))
	}
	a.seq, a.bal = 2, 3500
	cb, err = l.CardBalance(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, int64(3500), cb)

	// Spend some, then refund the rest.
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 700), bar.pay(t, b, 400)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res), "chain joins the sale, load and top-up writes")
	// Paid online but not yet on the card: refunded with the card.
	ev3 := ev
	ev3.ID, ev3.Payment, ev3.Amount = "evt_3", "pi_3", 300
	code, err = prov.Deliver(ctx, ev3)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann", IBAN: "DE00 1234"})
	require.ErrorIs(t, err, ErrInvalid)
	_, amt, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	require.Equal(t, int64(2800+300), amt)
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89370400440532013000"})
	require.ErrorIs(t, err, ErrExists)
	p, err := l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, now.Add(24*time.Hour), 0)
	require.NoError(t, err)
	require.Equal(t, 1, p.Count)
	require.Equal(t, int64(3100), p.Total)
	require.Contains(t, string(p.XML), `<InstdAmt Ccy="EUR">31.00</InstdAmt>`)
	require.Contains(t, string(p.XML), "DE89370400440532013000")
	_, err = l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, now, 0)
	require.ErrorIs(t, err, ErrNothingToPay)
	bank, err := l.Balance(ctx, org, Bank, "")
	require.NoError(t, err)
	require.Equal(t, int64(-3100), bank, "paid out of the bank account")

	// The store closes the day: 25.00 + 5.00 + 10.00 in cash expected, 39.50 counted.
	day, err := l.CloseStoreDay(ctx, org, "gate", now, 3950)
	require.NoError(t, err)
	require.Equal(t, int64(4000), day.Expected)
	require.Equal(t, int64(-50), day.Difference())
	_, err = l.CloseStoreDay(ctx, org, "gate", now, 4000)
	require.ErrorIs(t, err, ErrDayClosed)

	// Breakage only after the deadline; card b's 6.00 and its 2.00 paid
	// online but never loaded are then unclaimed.
	ev4 := ev
	ev4.ID, ev4.Payment, ev4.Amount, ev4.Card = "evt_4", "pi_4", 200, terminaltx.CardHex(b.uid)
	require.NoError(t, l.RecordPayment(ctx, "testpay", ev4))
	_, _, err = l.CloseRefundWindow(ctx, org, "fest")
	require.ErrorIs(t, err, ErrWindowOpen)
	now = now.Add(31 * 24 * time.Hour)
	n, total, err := l.CloseRefundWindow(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, int64(600+200), total)
	n, _, err = l.CloseRefundWindow(ctx, org, "fest")
	require.NoError(t, err)
	require.Zero(t, n)
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: b.uid, Holder: "Bob", IBAN: "DE89370400440532013000"})
	require.ErrorIs(t, err, ErrRefundWindow)
	br, err := l.Balance(ctx, org, Breakage, "")
	require.NoError(t, err)
	require.Equal(t, int64(800), br)
	pl, err := l.Balance(ctx, org, PendingLoads, "")
	require.NoError(t, err)
	require.Zero(t, pl)
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)

	days, err := l.StoreDays(ctx, org, now.AddDate(0, 0, -31), now.AddDate(0, 0, -30))
	require.NoError(t, err)
	require.Len(t, days, 2)
	d0 := days[0]
	require.Equal(t, "gate", d0.Store)
	require.Equal(t, int64(4000), d0.ExpectedCash)
	require.NotNil(t, d0.CountedCash)
	require.Equal(t, int64(-50), *d0.Difference)
	require.Equal(t, []int64{50, 2, 48}, []int64{d0.CardsReceived, d0.CardsSold, d0.CardsInStock})
	require.Nil(t, days[1].CountedCash)
	require.Equal(t, int64(48), days[1].CardsInStock)

	rep, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, []MerchantSales{{Merchant: "bar", Count: 2, Amount: 1100}}, rep.Sales)
	require.Equal(t, []ChannelTopUps{{Channel: "cash", Status: "loaded", Count: 2, Amount: 3000},
		{Channel: "online", Status: "expired", Count: 1, Amount: 200},
		{Channel: "online", Status: "loaded", Count: 1, Amount: 1500},
		{Channel: "online", Status: "refunded", Count: 1, Amount: 300}}, rep.TopUps)
	require.Zero(t, rep.Outstanding, "refunded and broken")

	// No secret-looking material in errors: the IBAN is not echoed.
	_, _, err = l.RequestRefund(ctx, org, RefundRequest{Card: b.uid, Holder: "Bob", IBAN: "DE89370400440532013001"})
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "DE89370400440532013001"))
}
