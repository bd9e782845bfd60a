package payment_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/payment"
	"github.com/loopcard/loopcard/ledger/payment/paytest"
)

var secret = payment.NewSecret([]byte("whsec_test_0123456789"))

func TestVerify(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := payment.Sign(secret, now, body)
	other := payment.Sign(payment.NewSecret([]byte("other")), now, body)
	tests := []struct {
		name   string
		header string
		body   string
		at     time.Time
		want   error
	}{
		{"good", good, string(body), now, nil},
		{"within tolerance", good, string(body), now.Add(4 * time.Minute), nil},
		{"too old", good, string(body), now.Add(6 * time.Minute), payment.ErrTimestamp},
		{"from the future", good, string(body), now.Add(-6 * time.Minute), payment.ErrTimestamp},
		{"body changed", good, `{"id":"evt_2"}`, now, payment.ErrSignature},
		{"other secret", other, string(body), now, payment.ErrSignature},
		{"rotated secret: one of two matches", other + "," + strings.Split(good, ",")[1], string(body), now, nil},
		{"empty", "", string(body), now, payment.ErrNoSignature},
		{"no v1", "t=1760000000", string(body), now, payment.ErrNoSignature},
		{"bad hex", "t=1760000000,v1=zz", string(body), now, payment.ErrNoSignature},
		{"two timestamps", "t=1,t=2," + strings.Split(good, ",")[1], string(body), now, payment.ErrNoSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := payment.Verify(secret, tc.header, []byte(tc.body), tc.at, 0)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestHandlerWithTestProvider(t *testing.T) {
	var mu sync.Mutex
	var got []payment.Event
	fail := true
	h := &payment.Handler{Secret: secret, Record: func(_ *http.Request, e payment.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return errors.New("database down")
		}
		got = append(got, e)
		return nil
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p := &paytest.Provider{Secret: secret, URL: srv.URL}
	ctx := context.Background()
	e := payment.Event{ID: "evt_1", Type: payment.TypePaymentSucceeded, Payment: "pi_1", Org: 7, Card: "04AABBCCDDEEFF", Amount: 2000, Currency: "EUR"}

	code, err := p.Deliver(ctx, e)
	require.NoError(t, err)
	require.Equal(t, http.StatusInternalServerError, code, "recording failed: the provider must retry")
	code, err = p.Deliver(ctx, e)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []payment.Event{e}, got)

	// A replay outside the window, a forged signature and a bad event are refused.
	late := &paytest.Provider{Secret: secret, URL: srv.URL, Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }}
	code, err = late.Deliver(ctx, e)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code)
	forged := &paytest.Provider{Secret: payment.NewSecret([]byte("guess")), URL: srv.URL}
	code, err = forged.Deliver(ctx, e)
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code)
	code, err = p.DeliverRaw(ctx, []byte(`{"id":"evt_3","type":"payment.succeeded","amount":-5}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, code)
	require.Len(t, got, 1)
}
