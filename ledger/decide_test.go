package ledger

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// decideTx returns a debit of 300 from 1000 at card sequence 5, by terminal
// t1 of merchant m1, changed by edit; its signature is not checked by
// decide, so it is left zero.
func decideTx(t testing.TB, edit func(*terminaltx.Tx)) *terminaltx.Signed {
	t.Helper()
	tx := terminaltx.Tx{
		Kind: terminaltx.KindDebit, ID: txid.ID{0x01, 0x99}, Organizer: org,
		Terminal: "t1", TerminalSeq: 42, Card: []byte{4, 1, 2, 3, 4, 5, 6}, CardSeq: 5,
		Amount: 300, BalanceBefore: 1000, BalanceAfter: 700, Merchant: "m1",
		Time: time.UnixMilli(1_700_000_000_000),
	}
	if edit != nil {
		edit(&tx)
	}
	p, err := tx.MarshalPayload()
	if err != nil {
		t.Fatal(err)
	}
	s, err := terminaltx.Parse(append(p, make([]byte, terminaltx.SignatureSize)...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	prevID = txid.ID{0x01, 0x04}
	atID   = txid.ID{0x01, 0x05}
	nextID = txid.ID{0x01, 0x06}
)

// wantAlert is an alert decide should raise: its kind, whether it is a
// notice, and the other transaction it names (zero for none).
type wantAlert struct {
	kind   string
	notice bool
	other  txid.ID
}

func TestDecide(t *testing.T) {
	tx := decideTx(t, nil)
	other := decideTx(t, func(x *terminaltx.Tx) { x.Amount, x.BalanceAfter = 200, 800 })
	// facts of tx on a registered card holding 1000, whose chain has the
	// row before it (ending at 1000), and nothing at or after it.
	base := func() facts {
		return facts{
			tx:       tx,
			terminal: terminalInfo{merchant: "m1", merchantAccount: 9},
			card:     cardFacts{known: true, balance: 1000},
			prev:     chainRow{cardEvent{txn: prevID, before: 1200, after: 1000}, true},
		}
	}
	tests := []struct {
		name  string
		edit  func(*facts)
		want  verdict // status, reason, err, chained, closesGap, blocks
		alert []wantAlert
	}{
		{name: "posted", want: verdict{status: Accepted, chained: true}},
		{name: "posted, first on the card", edit: func(f *facts) {
			f.tx = decideTx(t, func(x *terminaltx.Tx) { x.CardSeq = 1 })
			f.prev = chainRow{}
		}, want: verdict{status: Accepted, chained: true}},
		{name: "posted, exactly funded", edit: func(f *facts) { f.card.balance = 300 },
			want: verdict{status: Accepted, chained: true}},
		{name: "posted, terminal sequence recorded with this id", edit: func(f *facts) {
			f.seqTaken, f.seqOwner = true, tx.ID
		}, want: verdict{status: Accepted, chained: true}},
		{name: "posted, late arrival joins the row after it", edit: func(f *facts) {
			f.next = chainRow{cardEvent{txn: nextID, before: 700, after: 600}, true}
		}, want: verdict{status: Accepted, chained: true, closesGap: true}},
		{name: "posted, below the chain tip's stand-in", edit: func(f *facts) {
			f.next = chainRow{cardEvent{before: 700, after: 600}, true}
		}, want: verdict{status: Accepted, chained: true}},

		{name: "duplicate", edit: func(f *facts) {
			f.recorded, f.recordedHash = true, tx.ContentHash()
			f.at = chainRow{cardEvent{txn: tx.ID}, true}
		}, want: verdict{status: Duplicate}},
		{name: "duplicate on an unknown card", edit: func(f *facts) {
			f.recorded, f.recordedHash = true, tx.ContentHash()
			f.card = cardFacts{}
		}, want: verdict{status: Duplicate}},
		{name: "conflict: same id, other content", edit: func(f *facts) {
			f.recorded, f.recordedHash = true, other.ContentHash()
		}, want: verdict{status: Rejected, err: ErrConflict}},
		{name: "terminal sequence reused", edit: func(f *facts) {
			f.seqTaken, f.seqOwner = true, atID
		}, want: verdict{status: Rejected, err: ErrTerminalSeqReused}},

		{name: "unknown card", edit: func(f *facts) { f.card = cardFacts{}; f.prev = chainRow{} },
			want: verdict{status: Held, reason: ReasonUnknownCard}},
		{name: "unknown card, wrong merchant", edit: func(f *facts) {
			f.card, f.prev = cardFacts{}, chainRow{}
			f.terminal.merchant = "m2"
		}, want: verdict{status: Held, reason: ReasonWrongMerchant},
			alert: []wantAlert{{kind: ReasonWrongMerchant, notice: true}}},
		{name: "unknown card, terminal revoked", edit: func(f *facts) {
			f.card, f.prev = cardFacts{}, chainRow{}
			f.terminal.revoked = true
		}, want: verdict{status: Held, reason: ReasonTerminalRevoked},
			alert: []wantAlert{{kind: ReasonTerminalRevoked, notice: true}}},

		{name: "clone", edit: func(f *facts) { f.at = chainRow{cardEvent{txn: atID, before: 1000, after: 700}, true} },
			want:  verdict{status: Held, reason: ReasonClone, blocks: true},
			alert: []wantAlert{{kind: ReasonClone, other: atID}}},
		{name: "clone of a card blocked earlier in the batch", edit: func(f *facts) {
			f.at = chainRow{cardEvent{txn: atID}, true}
			f.card.blocked = true
		}, want: verdict{status: Held, reason: ReasonClone}},
		{name: "clone from a revoked terminal", edit: func(f *facts) {
			f.at = chainRow{cardEvent{txn: atID}, true}
			f.terminal.revoked = true
		}, want: verdict{status: Held, reason: ReasonClone, blocks: true},
			alert: []wantAlert{{kind: ReasonClone, other: atID}}},

		// A card write a store reported is a claim: a conflict with it
		// is a notice for HQ, never a block (issue 17, M4).
		{name: "clone of a reported card write", edit: func(f *facts) {
			f.at = chainRow{cardEvent{txn: atID, before: 1000, after: 1001, claimed: true}, true}
		}, want: verdict{status: Held, reason: ReasonClone},
			alert: []wantAlert{{kind: ReasonWriteConflict, other: atID, notice: true}}},
		{name: "chain break against a reported card write", edit: func(f *facts) {
			f.prev = chainRow{cardEvent{txn: prevID, before: 1000, after: 1001, claimed: true}, true}
		}, want: verdict{status: Accepted, reason: ReasonChain, chained: true},
			alert: []wantAlert{{kind: ReasonWriteConflict, other: prevID, notice: true}}},

		{name: "chain break before", edit: func(f *facts) { f.prev.after = 1100 },
			want:  verdict{status: Accepted, reason: ReasonChain, chained: true, blocks: true},
			alert: []wantAlert{{kind: ReasonChain, other: prevID}}},
		{name: "chain break after", edit: func(f *facts) {
			f.next = chainRow{cardEvent{txn: nextID, before: 650, after: 600}, true}
		}, want: verdict{status: Accepted, reason: ReasonChain, chained: true, blocks: true, closesGap: true},
			alert: []wantAlert{{kind: ReasonChain, other: nextID}}},
		{name: "chain break both sides: one alert", edit: func(f *facts) {
			f.prev.after = 1100
			f.next = chainRow{cardEvent{txn: nextID, before: 650, after: 600}, true}
		}, want: verdict{status: Accepted, reason: ReasonChain, chained: true, blocks: true, closesGap: true},
			alert: []wantAlert{{kind: ReasonChain, other: prevID}}},
		{name: "chain break of a card blocked earlier in the batch", edit: func(f *facts) {
			f.prev.after = 1100
			f.card.blocked = true
		}, want: verdict{status: Accepted, reason: ReasonChain, chained: true}},

		{name: "sequence gap", edit: func(f *facts) { f.prev = chainRow{} },
			want:  verdict{status: Accepted, chained: true},
			alert: []wantAlert{{kind: ReasonSequenceGap, notice: true}}},
		{name: "sequence gap of a blocked card", edit: func(f *facts) { f.prev = chainRow{}; f.card.blocked = true },
			want:  verdict{status: Accepted, chained: true},
			alert: []wantAlert{{kind: ReasonSequenceGap, notice: true}}},

		{name: "unfunded", edit: func(f *facts) { f.card.balance = 299 },
			want:  verdict{status: Held, reason: ReasonUnfunded, chained: true, blocks: true},
			alert: []wantAlert{{kind: ReasonUnfunded}}},
		{name: "unfunded, card blocked earlier in the batch", edit: func(f *facts) {
			f.card.balance, f.card.blocked = 0, true
		}, want: verdict{status: Held, reason: ReasonUnfunded, chained: true}},
		{name: "unfunded after a chain break: the chain's alert stands", edit: func(f *facts) {
			f.card.balance = 10
			f.prev.after = 1100
		}, want: verdict{status: Held, reason: ReasonUnfunded, chained: true, blocks: true},
			alert: []wantAlert{{kind: ReasonChain, other: prevID}}},

		{name: "wrong merchant", edit: func(f *facts) { f.terminal.merchant = "m2" },
			want:  verdict{status: Held, reason: ReasonWrongMerchant, chained: true},
			alert: []wantAlert{{kind: ReasonWrongMerchant, notice: true}}},
		{name: "terminal revoked", edit: func(f *facts) { f.terminal.revoked = true },
			want:  verdict{status: Held, reason: ReasonTerminalRevoked, chained: true},
			alert: []wantAlert{{kind: ReasonTerminalRevoked, notice: true}}},
		{name: "terminal revoked and wrong merchant", edit: func(f *facts) {
			f.terminal.revoked, f.terminal.merchant = true, "m2"
		}, want: verdict{status: Held, reason: ReasonTerminalRevoked, chained: true},
			alert: []wantAlert{{kind: ReasonTerminalRevoked, notice: true}}},
		{name: "terminal revoked and unfunded: held for the terminal, card not blocked", edit: func(f *facts) {
			f.terminal.revoked = true
			f.card.balance = 0
		}, want: verdict{status: Held, reason: ReasonTerminalRevoked, chained: true},
			alert: []wantAlert{{kind: ReasonTerminalRevoked, notice: true}}},
		{name: "every alert at once: chain break after, gap, wrong merchant", edit: func(f *facts) {
			f.prev = chainRow{}
			f.next = chainRow{cardEvent{txn: nextID, before: 650, after: 600}, true}
			f.terminal.merchant = "m2"
		}, want: verdict{status: Held, reason: ReasonWrongMerchant, chained: true, blocks: true, closesGap: true},
			alert: []wantAlert{{kind: ReasonChain, other: nextID}, {kind: ReasonSequenceGap, notice: true},
				{kind: ReasonWrongMerchant, notice: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base()
			if tt.edit != nil {
				tt.edit(&f)
			}
			v := decide(&f)
			got := verdict{status: v.status, reason: v.reason, err: v.err, chained: v.chained,
				closesGap: v.closesGap, blocks: v.blocks}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
			var alerts []wantAlert
			for _, a := range v.alerts[:v.nAlerts] {
				w := wantAlert{kind: a.kind, notice: a.notice}
				if a.other != nil {
					w.other = *a.other
				}
				alerts = append(alerts, w)
			}
			if !slices.Equal(alerts, tt.alert) {
				t.Errorf("alerts = %+v, want %+v", alerts, tt.alert)
			}
			checkVerdict(t, &f, &v)
		})
	}
}

// checkVerdict checks the invariants of every verdict.
func checkVerdict(t *testing.T, f *facts, v *verdict) {
	t.Helper()
	s := f.tx
	alerts := v.alerts[:v.nAlerts]
	blocking := 0
	kinds := map[string]int{}
	for _, a := range alerts {
		if a.id != (txid.ID{}) || a.txn != s.ID || string(a.card) != string(s.Card) || a.detail == "" {
			t.Errorf("alert %+v: want no id, the transaction's id and card, and a detail", a)
		}
		if !a.notice {
			blocking++
		}
		kinds[a.kind]++
	}
	recorded := v.status == Accepted || v.status == Held
	switch v.status {
	case Accepted, Held, Duplicate, Rejected:
	default:
		t.Fatalf("status %v", v.status)
	}
	if (v.err != nil) != (v.status == Rejected) {
		t.Errorf("status %v with error %v", v.status, v.err)
	}
	if !recorded && (v.reason != "" || v.chained || v.closesGap || v.blocks || len(alerts) > 0) {
		t.Errorf("a %v transaction changes something: %+v", v.status, v)
	}
	if f.recorded {
		same := s.ContentHash() == f.recordedHash
		if same && v.status != Duplicate || !same && !errors.Is(v.err, ErrConflict) {
			t.Errorf("recorded (same content %v): %v %v", same, v.status, v.err)
		}
	}
	if v.status == Duplicate && !f.recorded {
		t.Errorf("duplicate of nothing recorded")
	}
	if f.seqTaken && f.seqOwner != s.ID && recorded {
		t.Errorf("terminal sequence of %x recorded again", f.seqOwner)
	}
	// Posted only when the card is known, funded, the card sequence free and
	// the terminal not at fault; held and posted exclude each other.
	if v.posts() {
		if !f.card.known || f.card.balance < s.Amount || f.at.ok || terminalHold(f.terminal, s) != "" {
			t.Errorf("posted: %+v", f.card)
		}
		if v.reason != "" && v.reason != ReasonChain {
			t.Errorf("posted with reason %q", v.reason)
		}
	}
	if v.status == Held && !slices.Contains([]string{ReasonClone, ReasonUnfunded, ReasonUnknownCard,
		ReasonWrongMerchant, ReasonTerminalRevoked}, v.reason) {
		t.Errorf("held for %q", v.reason)
	}
	if recorded && f.card.known && f.card.balance < s.Amount && v.posts() {
		t.Errorf("an unfunded debit posted")
	}
	if v.reason == ReasonUnfunded && (v.status != Held || f.card.balance >= s.Amount) {
		t.Errorf("unfunded: %v, balance %d, amount %d", v.status, f.card.balance, s.Amount)
	}
	// A clone is held, stays out of the chain, and blocks the card.
	if recorded && f.card.known && f.at.ok {
		if v.status != Held || v.reason != ReasonClone || v.chained || !(v.blocks || f.card.blocked || f.at.claimed) {
			t.Errorf("clone: %+v", v)
		}
	}
	// One blocking alert at most, and only for a card not blocked yet.
	if blocking > 1 || v.blocks != (blocking == 1) || v.blocks && f.card.blocked {
		t.Errorf("%d blocking alerts, blocks %v, card blocked %v", blocking, v.blocks, f.card.blocked)
	}
	claimsOnly := v.reason == ReasonClone && f.at.claimed ||
		v.reason == ReasonChain && (!f.prev.ok || f.prev.claimed || f.prev.after == s.BalanceBefore) &&
			(!f.next.ok || f.next.claimed || f.next.before == s.BalanceAfter)
	if recorded && !f.card.blocked && (v.reason == ReasonClone || v.reason == ReasonUnfunded || v.reason == ReasonChain) && !v.blocks && !claimsOnly {
		t.Errorf("%s did not block an active card", v.reason)
	}
	// A conflict with a reported card write alone never blocks.
	if claimsOnly && v.blocks {
		t.Errorf("a reported card write blocked the card: %+v", v)
	}
	if v.chained != (recorded && f.card.known && !f.at.ok) {
		t.Errorf("chained %v", v.chained)
	}
	if v.closesGap != (v.chained && f.next.ok && f.next.txn != (txid.ID{})) {
		t.Errorf("closesGap %v", v.closesGap)
	}
	if gap := v.chained && !f.prev.ok && s.CardSeq > 1; (kinds[ReasonSequenceGap] == 1) != gap || kinds[ReasonSequenceGap] > 1 {
		t.Errorf("sequence gap alerts %d, want gap %v", kinds[ReasonSequenceGap], gap)
	}
	// A debit its terminal got wrong is recorded, held and noticed, and
	// does not block the card on that account.
	if held := terminalHold(f.terminal, s); held != "" && recorded && !(f.card.known && f.at.ok) {
		if v.status != Held || v.reason != held || kinds[held] != 1 {
			t.Errorf("terminal at fault (%s): %v %q %v", held, v.status, v.reason, kinds)
		}
	}
	// Pure: the same facts, the same verdict.
	if again := decide(f); !reflect.DeepEqual(again, *v) {
		t.Errorf("decide is not deterministic: %+v then %+v", *v, again)
	}
}

func FuzzDecide(f *testing.F) {
	f.Add(int64(300), int64(1000), uint32(5), int64(1000), uint16(0b1_0100_0100_0000), int64(1000), int64(700))
	f.Add(int64(300), int64(1000), uint32(5), int64(10), uint16(0b0_0000_0100_0000), int64(0), int64(0))
	f.Add(int64(1), int64(1), uint32(1), int64(0), uint16(0xffff), int64(5), int64(0))
	f.Fuzz(func(t *testing.T, amount, before int64, cardSeq uint32, balance int64, flags uint16, prevAfter, nextBefore int64) {
		bit := func(n int) bool { return flags&(1<<n) != 0 }
		amount = 1 + abs(amount)%100_000
		before = amount + abs(before)%1_000_000
		s := decideTx(t, func(x *terminaltx.Tx) {
			x.Amount, x.BalanceBefore, x.BalanceAfter = amount, before, before-amount
			x.CardSeq = max(cardSeq, 1)
		})
		fc := facts{tx: s, terminal: terminalInfo{merchant: "m1", merchantAccount: 9}}
		if bit(0) {
			fc.terminal.merchant = "m2"
		}
		fc.terminal.revoked = bit(1)
		if bit(2) {
			fc.recorded, fc.recordedHash = true, s.ContentHash()
			if bit(3) {
				fc.recordedHash[0] ^= 1
			}
		}
		if bit(4) {
			fc.seqTaken, fc.seqOwner = true, s.ID
			if bit(5) {
				fc.seqOwner = atID
			}
		}
		if bit(6) {
			fc.card = cardFacts{known: true, balance: balance, blocked: bit(7)}
		}
		if bit(8) {
			if bit(9) {
				prevAfter = before
			}
			fc.prev = chainRow{cardEvent{txn: prevID, before: prevAfter + 1, after: prevAfter}, true}
		}
		if bit(10) {
			fc.at = chainRow{cardEvent{txn: atID, claimed: bit(14)}, true}
		}
		fc.prev.claimed = bit(15) && fc.prev.ok
		fc.next.claimed = bit(15) && fc.next.ok
		if bit(11) {
			if bit(12) {
				nextBefore = before - amount
			}
			fc.next = chainRow{cardEvent{txn: nextID, before: nextBefore}, true}
			if bit(13) {
				fc.next.txn = txid.ID{} // the chain tip's stand-in
			}
		}
		saved := fc
		v := decide(&fc)
		if !reflect.DeepEqual(saved, fc) {
			t.Fatalf("decide changed its facts")
		}
		checkVerdict(t, &fc, &v)
	})
}

func abs(x int64) int64 {
	if x < 0 {
		if x == -x { // math.MinInt64
			return 0
		}
		return -x
	}
	return x
}

// TestDecideAllocs: deciding a posted debit allocates nothing.
func TestDecideAllocs(t *testing.T) {
	f := facts{
		tx:       decideTx(t, nil),
		terminal: terminalInfo{merchant: "m1"},
		card:     cardFacts{known: true, balance: 1000},
		prev:     chainRow{cardEvent{txn: prevID, after: 1000}, true},
	}
	if n := testing.AllocsPerRun(100, func() {
		if v := decide(&f); v.status != Accepted {
			t.Fatal(v.status)
		}
	}); n != 0 {
		t.Errorf("decide allocates %v times per posted debit", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	f := facts{
		tx:       decideTx(b, nil),
		terminal: terminalInfo{merchant: "m1"},
		card:     cardFacts{known: true, balance: 1000},
		prev:     chainRow{cardEvent{txn: prevID, after: 1000}, true},
	}
	b.ReportAllocs()
	for b.Loop() {
		if v := decide(&f); v.status != Accepted {
			b.Fatal(v.status)
		}
	}
}
