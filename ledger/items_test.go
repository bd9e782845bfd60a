package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/menu"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// payItems debits the card at the terminal for a basket and returns the
// signed encoding (version 2).
func (tm *terminal) payItems(t testing.TB, c *card, items []terminaltx.Item) []byte {
	t.Helper()
	tm.seq++
	c.seq++
	amount := terminaltx.Total(items)
	tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id, TerminalSeq: tm.seq,
		Card: c.uid, CardSeq: c.seq, Amount: amount, BalanceBefore: c.bal, BalanceAfter: c.bal - amount,
		Merchant: tm.merchant, Time: time.Now(), Items: items}
	c.bal -= amount
	s, err := terminaltx.Sign(&tx, tm.key)
	require.NoError(t, err)
	return s.Bytes()
}

var basket = []terminaltx.Item{
	{Product: "beer", Quantity: 2, UnitPrice: 350, VATRateBP: 2100, MenuVersion: 1},
	{Product: "cup", Quantity: -1, UnitPrice: 100, VATRateBP: 0, MenuVersion: 1},
}

// TestUploadItems: version 1 and version 2 transactions are accepted side
// by side on both write paths; the items of version 2 are stored, a
// re-upload is a duplicate (the stored transaction gives back its bytes),
// and a transaction whose items do not sum to its amount, signed by an
// enrolled terminal, is rejected with the reason and changes nothing.
func TestUploadItems(t *testing.T) {
	for _, path := range []struct {
		name    string
		copyMin int
	}{{"insert", 1 << 30}, {"copy", 1}} {
		t.Run(path.name, func(t *testing.T) {
			l := newLedger(t)
			l.copyMinRows = path.copyMin
			ctx := context.Background()
			tm := newTerminal(t, l, "bar-1", "drinks")
			c1, c2 := newCard(1), newCard(2)
			fund(t, l, 2_000, c1, c2)
			batch := [][]byte{tm.pay(t, c1, 300), tm.payItems(t, c2, basket), tm.payItems(t, c1, basket[:1])}
			res, err := l.Upload(ctx, org, batch)
			require.NoError(t, err)
			require.Equal(t, []string{"accepted", "accepted", "accepted"}, statuses(res))
			res, err = l.Upload(ctx, org, batch)
			require.NoError(t, err)
			require.Equal(t, []string{"duplicate", "duplicate", "duplicate"}, statuses(res))

			rows, err := l.pool.Query(ctx, `SELECT txn_id::text, line, merchant_id, product_id, quantity, unit_price, vat_rate_bp, menu_version
				FROM terminal_tx_items WHERE org_id = $1 ORDER BY txn_id, line`, org)
			require.NoError(t, err)
			type row struct {
				txn, merchant, product string
				line                   int16
				q, vat, ver            int32
				price                  int64
			}
			var got []row
			for rows.Next() {
				var r row
				require.NoError(t, rows.Scan(&r.txn, &r.line, &r.merchant, &r.product, &r.q, &r.price, &r.vat, &r.ver))
				got = append(got, r)
			}
			require.NoError(t, rows.Err())
			s2, _ := terminaltx.Parse(batch[1])
			s3, _ := terminaltx.Parse(batch[2])
			require.Len(t, got, 3, "no rows for the version 1 transaction")
			require.Contains(t, got, row{s2.ID.String(), "drinks", "beer", 0, 2, 2100, 1, 350})
			require.Contains(t, got, row{s2.ID.String(), "drinks", "cup", 1, -1, 0, 1, 100})
			require.Contains(t, got, row{s3.ID.String(), "drinks", "beer", 0, 2, 2100, 1, 350})

			var same int
			require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_tx_items i JOIN terminal_txs t USING (org_id, txn_id)
				WHERE i.at = t.at AND i.merchant_id = t.merchant_id`).Scan(&same))
			require.Equal(t, 3, same, "items carry their transaction's time and merchant")
			m, err := l.Balance(ctx, org, Merchant, "drinks")
			require.NoError(t, err)
			require.Equal(t, int64(300+600+700), m)

			// Items that do not sum to the amount: signed over bytes the
			// terminaltx package refuses to make.
			bad := forgeSum(t, tm, c2)
			res, err = l.Upload(ctx, org, [][]byte{bad, tm.pay(t, c1, 10)})
			require.NoError(t, err)
			require.Equal(t, Rejected, res[0].Status)
			require.ErrorIs(t, res[0].Err, terminaltx.ErrMalformed)
			require.Contains(t, res[0].Err.Error(), "items sum to 701, the amount is 600")
			require.Equal(t, Accepted, res[1].Status)
			var n int
			require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_tx_items WHERE org_id = $1`, org).Scan(&n))
			require.Equal(t, 3, n)
			requireInvariants(t, l)
		})
	}
}

// forgeSum signs a version 2 debit of 600 whose items sum to 701.
func forgeSum(t *testing.T, tm *terminal, c *card) []byte {
	tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id, TerminalSeq: tm.seq + 1,
		Card: c.uid, CardSeq: c.seq + 1, Amount: 600, BalanceBefore: c.bal, BalanceAfter: c.bal - 600,
		Merchant: tm.merchant, Time: time.Now(), Items: []terminaltx.Item{{Product: "beer", Quantity: 2, UnitPrice: 300, VATRateBP: 2100, MenuVersion: 1}}}
	p, err := tx.MarshalPayload()
	require.NoError(t, err)
	// The last item's quantity, unit price, VAT rate and menu version end
	// the payload: make it 1 × 701.
	binary.BigEndian.PutUint32(p[len(p)-6-8-4:], 1)
	binary.BigEndian.PutUint64(p[len(p)-6-8:], 701)
	return append(p, ed25519.Sign(tm.key, p)...)
}

// TestMenus: versions count up per merchant; the current one is the last
// set; bad menus and unknown merchants change nothing.
func TestMenus(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	require.NoError(t, l.AddMerchant(ctx, org, "drinks", "Drinks"))
	require.NoError(t, l.AddMerchant(ctx, org, "food", "Food"))
	_, err := l.Menu(ctx, org, "drinks")
	require.ErrorIs(t, err, ErrNotFound)
	ps := []menu.Product{{ID: "beer", Name: "Beer", Price: 350, VATRateBP: 2100, Category: "Drinks", AgeRestricted: true},
		{ID: "cup", Name: "Cup", Price: 100, Deposit: true}}
	m1, err := l.SetMenu(ctx, org, "drinks", ps, "cli:ann")
	require.NoError(t, err)
	require.Equal(t, int32(1), m1.Version)
	ps2 := append([]menu.Product{{ID: "cola", Name: "Cola", Price: 250, VATRateBP: 900}}, ps...)
	m2, err := l.SetMenu(ctx, org, "drinks", ps2, "cli:ann")
	require.NoError(t, err)
	require.Equal(t, int32(2), m2.Version)
	mf, err := l.SetMenu(ctx, org, "food", ps, "cli:bob")
	require.NoError(t, err)
	require.Equal(t, int32(1), mf.Version)

	cur, err := l.Menu(ctx, org, "drinks")
	require.NoError(t, err)
	require.Equal(t, menu.Menu{Merchant: "drinks", Version: 2, Products: ps2}, cur)
	old, err := l.MenuVersion(ctx, org, "drinks", 1)
	require.NoError(t, err)
	require.Equal(t, ps, old.Products)

	_, err = l.SetMenu(ctx, org, "nobody", ps, "cli:ann")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = l.SetMenu(ctx, org, "drinks", []menu.Product{{ID: "Bad", Name: "x"}}, "cli:ann")
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorIs(t, err, menu.ErrInvalid)
	cur, err = l.Menu(ctx, org, "drinks")
	require.NoError(t, err)
	require.Equal(t, int32(2), cur.Version)
}

// TestProductReportOfUploads: the product report of version 2
// transactions uploaded the normal way names each product from the
// merchant's menu, nets the returned cup, and its total equals the
// merchant's total in the event report (a version 1 debit included, as
// one unitemized line).
func TestProductReportOfUploads(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	tm := newTerminal(t, l, "bar-1", "drinks")
	_, err := l.SetMenu(ctx, org, "drinks", []menu.Product{
		{ID: "beer", Name: "Beer 0.3l", Price: 350, VATRateBP: 2100, Category: "Drinks"},
		{ID: "cup", Name: "Cup deposit", Price: 100, Category: "Deposit", Deposit: true},
	}, "cli:ann")
	require.NoError(t, err)
	c1, c2 := newCard(1), newCard(2)
	fund(t, l, 2_000, c1, c2)
	res, err := l.Upload(ctx, org, [][]byte{tm.payItems(t, c1, basket), tm.payItems(t, c2, basket), tm.pay(t, c1, 250)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted", "accepted"}, statuses(res))

	rep, err := l.Products(ctx, org, "fest", time.Time{})
	require.NoError(t, err)
	byProduct := map[string]ProductLine{}
	for _, ln := range rep.Lines {
		byProduct[ln.Product] = ln
	}
	require.Len(t, byProduct, 3)
	require.Equal(t, "Beer 0.3l", byProduct["beer"].Name)
	require.Equal(t, int64(4), byProduct["beer"].Quantity)
	require.Equal(t, int64(1400), byProduct["beer"].Revenue)
	require.Equal(t, int64(243), *byProduct["beer"].VAT, "1400·21/121 = 242.98")
	require.Equal(t, "Cup deposit", byProduct["cup"].Name)
	require.Equal(t, int64(-2), byProduct["cup"].Quantity)
	require.Equal(t, int64(-200), byProduct["cup"].Revenue)
	require.Equal(t, int64(250), byProduct[""].Revenue, "the version 1 debit is unitemized")
	ev, err := l.Event(ctx, org, "fest")
	require.NoError(t, err)
	var merchants int64
	for _, m := range ev.Sales {
		merchants += m.Amount
	}
	require.Equal(t, merchants, rep.Total)
	require.Equal(t, int64(1450), rep.Total)
}
