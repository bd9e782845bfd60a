package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
)

// OnlineTopUp is the online top-up of the demo: paid through the local
// test provider, recorded from its webhook as a pending load, written onto
// the card by a terminal.
type OnlineTopUp struct {
	Card       string `json:"card"`
	Amount     int64  `json:"amount"`
	Deliveries int    `json:"webhook_deliveries"`
	Pending    int    `json:"pending_loads_recorded"`
	Loaded     int    `json:"loads_written"`
	// CardBalance is the card's balance after the load; LedgerBalance the
	// ledger's. They are equal.
	CardBalance   int64 `json:"card_balance"`
	LedgerBalance int64 `json:"ledger_balance"`
}

// provider is the payment provider's name in the ledger.
const provider = "paytest"

func (r *runner) onlineTopUp(ctx context.Context) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	secret := payment.NewSecret(raw)
	clear(raw)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hook := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: &payment.Handler{Secret: secret, Tolerance: 5 * time.Minute,
		Record: func(req *http.Request, e payment.Event) error {
			return r.s.Ledger.RecordPayment(req.Context(), provider, e)
		}}}
	done := make(chan error, 1)
	go func() { done <- hook.Serve(ln) }()
	defer func() {
		_ = hook.Shutdown(context.WithoutCancel(ctx))
		<-done
	}()
	c := r.sold[1]
	const amount = 1500
	p := &paytest.Provider{Secret: secret, URL: "http://" + ln.Addr().String() + "/webhook"}
	ev := payment.Event{ID: "evt_demo_" + c.UIDHex(), Type: payment.TypePaymentSucceeded, Payment: "pay_demo_" + c.UIDHex(),
		Org: r.org, Card: c.UIDHex(), Amount: amount, Currency: "EUR", Created: time.Now().Unix()}
	o := OnlineTopUp{Card: c.Number, Amount: amount}
	for range 2 { // providers deliver at least once
		st, err := p.Deliver(ctx, ev)
		if err != nil {
			return err
		}
		if st != http.StatusOK {
			return fmt.Errorf("demo: webhook answered %d", st)
		}
		o.Deliveries++
	}
	pl, err := r.s.Ledger.PendingLoads(ctx, r.org, c.UID)
	if err != nil {
		return err
	}
	o.Pending = len(pl)
	r.say("   the cardholder of %s pays %s through the test provider; its signed webhook arrives %d times and the ledger records %d pending load",
		c.Number, money(amount), o.Deliveries, o.Pending)
	bar := r.terms[0]
	loads, err := bar.WritePendingLoads(ctx, c.Field(), bar.ConfirmLoad)
	if err != nil {
		return err
	}
	o.Loaded = len(loads)
	if len(loads) != 1 || loads[0].Write == nil {
		return errors.New("demo: the pending load was not written")
	}
	o.CardBalance = loads[0].Write.After
	if o.LedgerBalance, err = r.s.Ledger.CardBalance(ctx, r.org, c.UID); err != nil {
		return err
	}
	r.sum.Online = &o
	r.say("   at its next tap, bar-1 (online) fetches the card's credit key for this one load and writes it: card %s, ledger %s",
		money(o.CardBalance), money(o.LedgerBalance))
	return nil
}
