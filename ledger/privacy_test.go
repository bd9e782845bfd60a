package ledger

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
	"github.com/loopcard/loopcard/ledger/sepa"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/softhsm"
)

// withSealer gives l a fresh SoftHSM2 token with a data-kek as its Sealer.
func withSealer(t *testing.T, l *Ledger) *keys.HSM {
	t.Helper()
	h, err := keys.Open(softhsm.NewTestToken(t), keys.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	_, err = h.Init(context.Background())
	require.NoError(t, err)
	l.sealer = h
	return h
}

func TestRefundPayeeSealed(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.AddStore(ctx, org, "gate", "Gate"))
	a, b := newCard(1), newCard(2)
	fund(t, l, 1000, a, b)

	// Without the HSM nothing is stored in plaintext: the refund is refused.
	_, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89370400440532013000"})
	require.ErrorIs(t, err, ErrNoSealer)
	ci, err := l.Card(ctx, org, a.uid)
	require.NoError(t, err)
	require.Equal(t, "active", ci.Status, "a refused refund changes nothing")

	withSealer(t, l)
	ra, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00", BIC: "COBADEFFXXX"})
	require.NoError(t, err)
	rb, _, err := l.RequestRefund(ctx, org, RefundRequest{Card: b.uid, Holder: "Bob Other", IBAN: "GB82WEST12345698765432"})
	require.NoError(t, err)

	// The database holds neither name nor IBAN in any form a dump shows.
	var dump string
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT string_agg(r::text, '|') FROM refunds r`).Scan(&dump))
	// Whole secrets only, as text and as the hex a bytea dump shows: short
	// fragments would turn up in random ciphertext hex by chance.
	for _, secret := range []string{"Ann Example", "Bob Other", "DE89 3704 0044 0532 0130 00", "DE89370400440532013000",
		"GB82WEST12345698765432", "COBADEFFXXX"} {
		require.NotContains(t, dump, secret)
		require.NotContains(t, dump, hex.EncodeToString([]byte(secret)))
	}

	// A payee moved to another refund does not open.
	_, err = l.pool.Exec(ctx, `UPDATE refunds SET payee = (SELECT payee FROM refunds WHERE refund_id = $1) WHERE refund_id = $2`, ra[:], rb[:])
	require.NoError(t, err)
	_, err = l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
	require.ErrorIs(t, err, keys.ErrEnvelope)
	var exported int
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM refunds WHERE status = 'exported'`).Scan(&exported))
	require.Zero(t, exported, "a failed export books nothing")
	// Put it back (reseal b's details as RequestRefund did).
	env, err := l.sealPayee(ctx, org, rb, payeeDetails{Name: "Bob Other", IBAN: "GB82WEST12345698765432"})
	require.NoError(t, err)
	_, err = l.pool.Exec(ctx, `UPDATE refunds SET payee = $1 WHERE refund_id = $2`, env, rb[:])
	require.NoError(t, err)

	// A ledger without the HSM cannot export sealed refunds.
	plain := New(l.pool, Options{})
	_, err = plain.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
	require.ErrorIs(t, err, ErrNoSealer)

	p, err := l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, 2, p.Count)
	x := string(p.XML)
	for _, want := range []string{"Ann Example", "DE89370400440532013000", "COBADEFFXXX", "Bob Other"} {
		require.Contains(t, x, want)
	}
	requireInvariants(t, l)
}

func TestUnmatchedPaymentsParked(t *testing.T) {
	l := newLedger(t)
	var logs bytes.Buffer
	l.log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := context.Background()
	known := newCard(1)
	fund(t, l, 100, known)
	unknown := newCard(99)

	now := time.Now()
	secret := payment.NewSecret([]byte("whsec_x"))
	h := &payment.Handler{Secret: secret, Now: func() time.Time { return now }, Record: func(r *http.Request, e payment.Event) error {
		return l.RecordPayment(r.Context(), "testpay", e)
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	prov := &paytest.Provider{Secret: secret, URL: srv.URL, Now: func() time.Time { return now }}

	ev := func(id, pay, card, cur string, amount int64) payment.Event {
		return payment.Event{ID: id, Type: payment.TypePaymentSucceeded, Payment: pay, Org: org, Card: card, Amount: amount, Currency: cur}
	}
	tests := []struct {
		name   string
		ev     payment.Event
		reason string // "" = matched
	}{
		{"unknown card", ev("evt_1", "pi_1", terminaltx.CardHex(unknown.uid), "EUR", 1500), ReasonUnknownCard},
		{"unknown card, redelivered", ev("evt_1", "pi_1", terminaltx.CardHex(unknown.uid), "EUR", 1500), ReasonUnknownCard},
		{"same payment, new event", ev("evt_1b", "pi_1", terminaltx.CardHex(unknown.uid), "EUR", 1500), ReasonUnknownCard},
		{"unreadable card", ev("evt_2", "pi_2", "my card is blue", "EUR", 700), ReasonBadCard},
		{"other currency", ev("evt_3", "pi_3", terminaltx.CardHex(known.uid), "USD", 900), ReasonCurrency},
		{"known card", ev("evt_4", "pi_4", terminaltx.CardHex(known.uid), "EUR", 400), ""},
	}
	for _, tc := range tests {
		code, err := prov.Deliver(ctx, tc.ev)
		require.NoError(t, err, tc.name)
		require.Equal(t, http.StatusOK, code, "%s: acknowledged, so the provider stops retrying", tc.name)
	}
	parked, err := l.UnmatchedPayments(ctx, org)
	require.NoError(t, err)
	require.Len(t, parked, 3, "each provider payment parked once")
	byRef := map[string]UnmatchedPayment{}
	for _, p := range parked {
		byRef[p.Payment] = p
	}
	require.Equal(t, ReasonUnknownCard, byRef["pi_1"].Reason)
	require.Equal(t, int64(1500), byRef["pi_1"].Amount)
	require.Equal(t, "evt_1", byRef["pi_1"].Event)
	require.Equal(t, terminaltx.CardHex(unknown.uid), byRef["pi_1"].CardRef)
	require.Equal(t, ReasonBadCard, byRef["pi_2"].Reason)
	require.Equal(t, ReasonCurrency, byRef["pi_3"].Reason)
	require.Equal(t, "USD", byRef["pi_3"].Currency)
	require.Equal(t, 3, bytes.Count(logs.Bytes(), []byte("parked for HQ")), "one warning per parked payment")

	// Only the matched payment moved money.
	loads, err := l.PendingLoads(ctx, org, known.uid)
	require.NoError(t, err)
	require.Len(t, loads, 1)
	require.Equal(t, int64(400), loads[0].Amount)
	pending, err := l.Balance(ctx, org, PendingLoads, "")
	require.NoError(t, err)
	require.Equal(t, int64(400), pending)
	requireInvariants(t, l)
}
