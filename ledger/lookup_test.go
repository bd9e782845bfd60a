package ledger

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"
)

// The lookups the API asks instead of querying the ledger's tables.
func TestLookupsForTheAPI(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	tm := newTerminal(t, l, "sim1-bar", "bar")
	c, other := newCard(1), newCard(2)
	fund(t, l, 100, c, other)

	k, err := l.TerminalKey(ctx, org, "sim1-bar")
	require.NoError(t, err)
	require.Equal(t, TerminalKey{Status: TerminalEnrolled, PublicKey: tm.key.Public().(ed25519.PublicKey), Merchant: "bar"}, k)
	_, err = l.TerminalKey(ctx, org, "nosuch")
	require.ErrorIs(t, err, ErrNotFound)

	res, err := l.Upload(ctx, org, [][]byte{tm.pay(t, c, 10), tm.pay(t, c, 5)})
	require.NoError(t, err)
	require.Len(t, res, 2)
	h, err := l.CardHistory(ctx, org, c.uid, 500)
	require.NoError(t, err)
	require.Len(t, h.Payments, 2)
	require.Equal(t, []int64{5, 10}, []int64{h.Payments[0].Amount, h.Payments[1].Amount}, "newest first")
	require.Equal(t, int64(85), h.Payments[0].BalanceAfter)
	require.Equal(t, "bar", h.Payments[0].Merchant)
	require.Equal(t, "posted", h.Payments[0].Status)
	require.Len(t, h.TopUps, 1)
	require.Equal(t, CardTopUp{ID: h.TopUps[0].ID, At: h.TopUps[0].At, Channel: "cash", Store: "store-1", Amount: 100, Status: "loaded"}, h.TopUps[0])
	h, err = l.CardHistory(ctx, org, c.uid, 1)
	require.NoError(t, err)
	require.Len(t, h.Payments, 1, "at most limit")
	h, err = l.CardHistory(ctx, org, newCard(3).uid, 500)
	require.NoError(t, err)
	require.Empty(t, h.Payments)
	require.Empty(t, h.TopUps)

	lag, err := l.UploadLag(ctx, org, "sim1-")
	require.NoError(t, err)
	require.Equal(t, 2, lag.Count)
	require.GreaterOrEqual(t, lag.Max, lag.P50)
	lag, err = l.UploadLag(ctx, org, "sim2-")
	require.NoError(t, err)
	require.Equal(t, UploadLag{}, lag)

	require.NoError(t, l.RevokeTerminal(ctx, org, "sim1-bar"))
	k, err = l.TerminalKey(ctx, org, "sim1-bar")
	require.NoError(t, err)
	require.Equal(t, TerminalRevoked, k.Status, "a revocation shows at once")
}
