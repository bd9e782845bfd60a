package storeclient_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/api/storeclient"
	"github.com/loopcard/loopcard/ledger"
)

// TestRedeemVoucherAtStore: the store redeems a voucher for a card and
// writes its value onto it at once, as non-refundable credit; the same
// code again is refused and leaves nothing open; the journal never holds
// a code.
func TestRedeemVoucherAtStore(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1)
	dir := t.TempDir()
	sc := w.client(t, dir, nil)
	c := w.cards[0]
	_, err := sc.Sell(ctx, c.Field(), 0, 1000)
	require.NoError(t, err)
	_, codes, err := w.stack.Ledger.IssueVouchers(ctx, org, ledger.VoucherBatch{Event: "fest", Amount: 400, Count: 1,
		Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	code := codes[0].Reveal()

	res, err := sc.RedeemVoucher(ctx, c.Field(), code)
	require.NoError(t, err)
	require.NotNil(t, res.Load)
	require.Equal(t, int64(1400), res.Load.Write.After, "written onto the card")
	cr, err := w.stack.Ledger.CardCredit(ctx, org, c.UID)
	require.NoError(t, err)
	require.Equal(t, ledger.Credit{Total: 1400, NonRefundable: 400}, cr)

	_, err = sc.RedeemVoucher(ctx, c.Field(), code)
	var he *storeclient.HTTPError
	require.ErrorAs(t, err, &he)
	require.Equal(t, 409, he.Status)
	require.Empty(t, sc.Open())
	require.Equal(t, [2]int64{1400, 0}, w.ledgerCard(t, c))

	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a directory
		}
		require.NotContains(t, strings.ToUpper(string(b)), strings.ReplaceAll(code, "-", ""), f)
		require.NotContains(t, string(b), code, f)
	}
	require.NoError(t, w.stack.Ledger.Verify(ctx))
}
