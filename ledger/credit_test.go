package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/sepa"
)

// redeem redeems code for c and writes it onto the card.
func redeem(t *testing.T, l *Ledger, c *card, code VoucherCode) {
	t.Helper()
	ctx := context.Background()
	load, amount, err := l.RedeemVoucher(ctx, org, VoucherRedemption{Card: c.uid, Code: code, Store: "store-1", Actor: "store:1:tok"})
	require.NoError(t, err)
	c.seq++
	require.NoError(t, l.LoadPending(ctx, org, c.uid, load, &CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + amount}))
	c.bal += amount
}

func requireCredit(t *testing.T, l *Ledger, c *card, total, nonRefundable int64) {
	t.Helper()
	cr, err := l.CardCredit(context.Background(), org, c.uid)
	require.NoError(t, err)
	require.Equal(t, total, cr.Total, "total")
	require.Equal(t, nonRefundable, cr.NonRefundable, "non-refundable")
	require.Equal(t, c.bal, cr.Total, "the ledger holds what the card does")
}

// TestCreditKinds: a voucher's credit is spent before money paid in, also
// by several debits of one upload; a voucher is used once; a refund pays
// only the money, and the rest (the card's voucher credit and a voucher
// not yet written onto it) goes to breakage; Verify holds throughout.
func TestCreditKinds(t *testing.T) {
	l := newLedger(t)
	withSealer(t, l)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b := newCard(1), newCard(2)
	fund(t, l, 1000, a)
	fund(t, l, 200, b)

	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 5, Expires: time.Now().Add(time.Hour),
		Label: "welcome credit", Actor: "hq:1:alice"})
	require.NoError(t, err)
	require.Len(t, codes, 5)
	require.Len(t, codes[0].Reveal(), 19)
	_, _, err = l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 1, Expires: time.Now().Add(-time.Minute), Actor: "hq"})
	require.ErrorIs(t, err, ErrInvalid, "expired at issue")

	redeem(t, l, a, codes[0])
	requireCredit(t, l, a, 1500, 500)

	// Used once: not again, by this card or another.
	_, _, err = l.RedeemVoucher(ctx, org, VoucherRedemption{Card: a.uid, Code: codes[0], Actor: "card"})
	require.ErrorIs(t, err, ErrVoucher)
	_, _, err = l.RedeemVoucher(ctx, org, VoucherRedemption{Card: b.uid, Code: codes[0], Actor: "card"})
	require.ErrorIs(t, err, ErrVoucher)
	printed, err := ParseVoucherCode(codes[0].Reveal())
	require.NoError(t, err)
	_, _, err = l.RedeemVoucher(ctx, org, VoucherRedemption{Card: b.uid, Code: printed, Actor: "card"})
	require.ErrorIs(t, err, ErrVoucher, "the printed form is the same code")
	_, err = ParseVoucherCode("AAAA-BBBB")
	require.ErrorIs(t, err, ErrVoucher)
	// Expired.
	l.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, _, err = l.RedeemVoucher(ctx, org, VoucherRedemption{Card: b.uid, Code: codes[3], Actor: "card"})
	require.ErrorIs(t, err, ErrVoucher)
	l.now = time.Now
	requireInvariants(t, l)

	// Payments spend the voucher first.
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 300)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	requireCredit(t, l, a, 1200, 200)
	requireInvariants(t, l)

	// Two debits of one upload take it in all, then money.
	redeem(t, l, b, codes[1])
	requireCredit(t, l, b, 700, 500)
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, b, 300), bar.pay(t, b, 300)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	requireCredit(t, l, b, 100, 0)
	requireInvariants(t, l)

	// Debits at two merchants in one upload take the voucher in card
	// sequence order: each merchant's share of it is its own.
	food := newTerminal(t, l, "food-1", "food")
	c := newCard(4)
	fund(t, l, 200, c)
	redeem(t, l, c, codes[3])
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 300), food.pay(t, c, 300)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	requireCredit(t, l, c, 100, 0)
	spentFood, err := l.Balance(ctx, org, NonRefundableCredit, "food")
	require.NoError(t, err)
	require.Equal(t, int64(-200), spentFood, "the bar's debit came first")
	requireInvariants(t, l)

	// A voucher redeemed, not yet on the card, is not refunded either.
	_, _, err = l.RedeemVoucher(ctx, org, VoucherRedemption{Card: a.uid, Code: codes[2], Actor: "card"})
	require.NoError(t, err)
	_, credit, err := l.RequestRefund(ctx, org, RefundRequest{Card: a.uid, Holder: "Ann Example", IBAN: "DE89 3704 0044 0532 0130 00"})
	require.NoError(t, err)
	require.Equal(t, int64(1000), credit, "only the money paid in")
	p, err := l.ExportPayouts(ctx, org, sepa.Party{Name: "Fest GmbH", IBAN: "GB82WEST12345698765432"}, time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, int64(1000), p.Total)
	requireBalance(t, l, Breakage, 700) // 200 on the card, 500 pending
	a.bal = 0
	requireCredit(t, l, a, 0, 0)
	// Issued onto cards 1500, spent at the bar 1100 and the food stall
	// 200, 200 gone to breakage.
	requireBalance(t, l, NonRefundableCredit, 1300)
	spent, err := l.Balance(ctx, org, NonRefundableCredit, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(-1100), spent, "voucher credit spent at the bar")
	requireBalance(t, l, Promotions, 2000)
	requireInvariants(t, l)
}

func requireBalance(t *testing.T, l *Ledger, kind AccountKind, want int64) {
	t.Helper()
	got, err := l.Balance(context.Background(), org, kind, "")
	require.NoError(t, err)
	require.Equal(t, want, got, string(kind))
}

// TestVoucherBreakage: after the refund deadline, breakage takes a card's
// voucher credit with its money, and the non-refundable part is emptied.
func TestVoucherBreakage(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(3)
	fund(t, l, 300, c)
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 1, Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	redeem(t, l, c, codes[0])
	_, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 100)})
	require.NoError(t, err)
	requireCredit(t, l, c, 700, 400)

	require.NoError(t, l.AddEvent(ctx, org, "fest", "Festival", time.Now().Add(time.Minute)))
	l.now = func() time.Time { return time.Now().Add(time.Hour) }
	n, total, err := l.CloseRefundWindow(ctx, org, "fest")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, int64(700), total)
	c.bal = 0
	requireCredit(t, l, c, 0, 0)
	requireBalance(t, l, Breakage, 700)
	requireBalance(t, l, NonRefundableCredit, 100) // 500 issued, 400 to breakage, 100 spent at the bar
	requireInvariants(t, l)
}

// TestVerifyCreditKinds: Verify finds a card's non-refundable part larger
// than its credit, and a non-refundable account no card account names,
// however balanced the postings that made them.
func TestVerifyCreditKinds(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	c := newCard(5)
	fund(t, l, 100, c)
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 50, Count: 1, Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	redeem(t, l, c, codes[0])
	requireInvariants(t, l)

	// A balanced entry that makes the voucher part larger than the credit.
	_, err = l.pool.Exec(ctx, `WITH n AS (SELECT account_id FROM accounts WHERE org_id = $1 AND kind = 'card_nonrefundable'),
			o AS (SELECT account_id FROM accounts WHERE org_id = $1 AND kind = 'nonrefundable_credit'),
			j AS (INSERT INTO journal (org_id, txn_id, kind, at) VALUES ($1, gen_random_uuid(), 'tamper', now()) RETURNING txn_id)
		INSERT INTO postings (org_id, txn_id, line, account_id, amount)
		SELECT $1, j.txn_id, 1, n.account_id, -1000 FROM j, n UNION ALL SELECT $1, j.txn_id, 2, o.account_id, 1000 FROM j, o`, org)
	require.NoError(t, err)
	var ie *InvariantError
	require.ErrorAs(t, l.Verify(ctx), &ie)
	require.Equal(t, "a card's non-refundable credit exceeds its credit", ie.Problem)

	l2 := newLedger(t)
	_, err = l2.pool.Exec(ctx, `INSERT INTO accounts (org_id, kind, ref, side, floor) VALUES ($1, 'card_nonrefundable', 'ffff', -1, 0)`, org)
	require.NoError(t, err)
	require.ErrorAs(t, l2.Verify(ctx), &ie)
	require.Equal(t, "a non-refundable account belongs to no card account", ie.Problem)
}

// TestVoucherCreditRemembered: the ledger remembers which cards have voucher
// credit and reads it with their lock; uploads after the first (of a
// remembered card, at a merchant met or not) spend what is left of it, as
// loads and earlier uploads left it.
func TestVoucherCreditRemembered(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(5)
	fund(t, l, 1000, c)
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 2, Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	redeem(t, l, c, codes[0])
	for i, want := range []int64{400, 300} {
		res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, c, 100)})
		require.NoError(t, err)
		require.Equal(t, []string{"accepted"}, statuses(res), i)
		requireCredit(t, l, c, c.bal, want)
	}
	redeem(t, l, c, codes[1])
	requireCredit(t, l, c, 1800, 800)
	food := newTerminal(t, l, "food-1", "food")
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, c, 450), food.pay(t, c, 450)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	requireCredit(t, l, c, 900, 0)
	spent, err := l.Balance(ctx, org, NonRefundableCredit, "food")
	require.NoError(t, err)
	require.Equal(t, int64(-350), spent)
	res, err = l.Upload(ctx, org, [][]byte{food.pay(t, c, 100)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	requireCredit(t, l, c, 800, 0)
	requireInvariants(t, l)
}

// TestVoucherCreditOldBinaryRows: during an upgrade a binary from before
// migration 029 writes debits without naming the voucher credit they
// spend; the trigger spends it for them, first, as before, and the sums
// hold.
func TestVoucherCreditOldBinaryRows(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	newTerminal(t, l, "bar-1", "bar")
	c := newCard(6)
	fund(t, l, 1000, c)
	_, codes, err := l.IssueVouchers(ctx, org, VoucherBatch{Event: "fest", Amount: 500, Count: 1, Expires: time.Now().Add(time.Hour), Actor: "hq"})
	require.NoError(t, err)
	redeem(t, l, c, codes[0])
	requireCredit(t, l, c, 1500, 500)
	// The old binary's multi-row insert, as it was.
	_, err = l.pool.Exec(ctx, `INSERT INTO terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq,
			amount, balance_before, balance_after, merchant_id, at, signature, status, hold_reason, chained, card_account, merchant_account)
		SELECT $1, gen_random_uuid(), 'bar-1', 9, c.card_id, 9, 300, 1500, 1200, 'bar', now(), '\x00'::bytea, 'posted', '', false,
			c.account_id, m.account_id
		FROM cards c, merchants m WHERE c.org_id = $1 AND c.card_id = $2 AND m.org_id = $1 AND m.merchant_id = 'bar'`, org, c.uid)
	require.NoError(t, err)
	c.bal -= 300
	requireCredit(t, l, c, 1200, 200)
	spent, err := l.Balance(ctx, org, NonRefundableCredit, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(-300), spent)
	requireInvariants(t, l)
}
