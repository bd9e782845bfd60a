package cardpage_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger"
)

// TestBrowserVoucher: in headless Chromium against the real API, the
// cardholder redeems a voucher on the card page, in English and in Dutch;
// a code redeemed twice is refused; once written onto the card, the page
// shows the voucher part of the balance. Each page passes axe-core.
func TestBrowserVoucher(t *testing.T) {
	e := newPayingEnv(t, 1)
	ctx := context.Background()
	card := e.cards[0]
	_, codes, err := e.ledger.IssueVouchers(ctx, 1, ledger.VoucherBatch{Event: "fest", Amount: 300, Count: 2,
		Expires: time.Now().Add(time.Hour), Label: "welcome credit", Actor: "hq"})
	require.NoError(t, err)
	ts := httptest.NewUnstartedServer(e.srv)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	b := newTab(t, ts.URL)
	cb := "/c/" + card.token

	b.open(cb)
	b.fill("#code", codes[0].Reveal())
	b.submit(`form[action$="/voucher"] button`)
	b.page("voucher-done", "Voucher redeemed: €3.00 is added", "Waiting to be loaded")
	b.fill("#code", codes[0].Reveal())
	b.submit(`form[action$="/voucher"] button`)
	b.page("voucher-used", "This voucher code is unknown, already used or expired")

	b.open(cb + "?lang=nl")
	b.fill("#code", codes[1].Reveal())
	b.submit(`form[action$="/voucher"] button`)
	b.page("nl-voucher-done", "Tegoedbon ingewisseld: €\u00a03,00 komt op je kaart")
	b.fill("#code", "AAAA-AAAA-AAAA-AAAA")
	b.submit(`form[action$="/voucher"] button`)
	b.page("nl-voucher-unknown", "Deze code is onbekend, al gebruikt of verlopen")

	// Written onto the card by a terminal: the page shows the voucher part.
	loads, err := e.ledger.PendingLoads(ctx, 1, card.uid)
	require.NoError(t, err)
	require.Len(t, loads, 2)
	for _, l := range loads {
		require.Equal(t, "voucher", l.Channel)
		require.NoError(t, e.ledger.LoadPending(ctx, 1, card.uid, l.ID, nil))
	}
	b.open(cb + "?lang=en")
	b.page("voucher-balance", "€16.00", "Of which vouchers", "€6.00", "not refunded")
	require.NoError(t, e.ledger.Verify(ctx))
}

// TestVoucherPage: the form without a code, or with a used one, is
// refused with the card page and its message; the fake's code works once.
func TestVoucherPage(t *testing.T) {
	f := newFake()
	h, _ := newPages(t, f)
	c := newClient(t, h)
	b := base
	p := c.post(b+"/voucher", url.Values{"code": {""}})
	require.Equal(t, 400, p.status, p.body)
	require.Contains(t, p.body, "This voucher code is unknown")
	p = c.post(b+"/voucher", url.Values{"code": {fakeVoucher}})
	require.Equal(t, 201, p.status, p.body)
	require.Contains(t, p.body, "Voucher redeemed: €3.00")
	p = c.post(b+"/voucher", url.Values{"code": {fakeVoucher}})
	require.Equal(t, 409, p.status, p.body)
	require.Contains(t, p.body, "This voucher code is unknown, already used or expired")
}
