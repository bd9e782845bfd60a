package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// terminal is a test terminal: its key and sequence counter.
type terminal struct {
	id, merchant string
	key          ed25519.PrivateKey
	seq          int64
}

func newTerminal(t testing.TB, l *Ledger, id, merchant string) *terminal {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, l.AddMerchant(ctx, org, merchant, "Merchant "+merchant))
	tok, err := l.RegisterTerminal(ctx, org, TerminalRegistration{Terminal: id, Merchant: merchant, Event: "fest", TTL: time.Hour})
	require.NoError(t, err)
	seed := make([]byte, 32)
	copy(seed, id)
	key := ed25519.NewKeyFromSeed(seed)
	require.NoError(t, l.EnrolTerminal(ctx, org, id, tok, key.Public().(ed25519.PublicKey)))
	return &terminal{id: id, merchant: merchant, key: key}
}

// card is a simulated card: its UID, counter and balance.
type card struct {
	uid []byte
	seq uint32
	bal int64
}

func newCard(n int) *card {
	uid := make([]byte, 7)
	uid[0] = 0x04
	binary.BigEndian.PutUint32(uid[3:], uint32(n))
	return &card{uid: uid}
}

var idRand = rand.New(rand.NewPCG(1, 2))
var idMu sync.Mutex

func testID() txid.ID {
	idMu.Lock()
	defer idMu.Unlock()
	var r [10]byte
	binary.BigEndian.PutUint64(r[:], idRand.Uint64())
	binary.BigEndian.PutUint16(r[8:], uint16(idRand.Uint32()))
	return txid.New(time.Now(), r[:])
}

// pay debits the card at the terminal and returns the signed encoding.
func (tm *terminal) pay(t testing.TB, c *card, amount int64) []byte {
	t.Helper()
	tm.seq++
	c.seq++
	tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id, TerminalSeq: tm.seq,
		Card: c.uid, CardSeq: c.seq, Amount: amount, BalanceBefore: c.bal, BalanceAfter: c.bal - amount,
		Merchant: tm.merchant, Time: time.Now()}
	c.bal -= amount
	s, err := terminaltx.Sign(&tx, tm.key)
	require.NoError(t, err)
	return s.Bytes()
}

// fund registers cards and tops each up with amount cash at store-1.
func fund(t testing.TB, l *Ledger, amount int64, cards ...*card) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, l.AddStore(ctx, org, "store-1", "Store"))
	uids := make([][]byte, len(cards))
	for i, c := range cards {
		uids[i] = c.uid
	}
	require.NoError(t, l.RegisterCards(ctx, org, "fest", uids))
	for _, c := range cards {
		c.seq++
		cashLoad(t, l, org, "store-1", c.uid, amount, &CardWrite{Seq: c.seq, Before: c.bal, After: c.bal + amount})
		c.bal += amount
	}
}

func statuses(rs []Result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Status.String()
		if r.Reason != "" {
			out[i] += "/" + r.Reason
		}
	}
	return out
}

func TestUploadOutcomes(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	food := newTerminal(t, l, "food-1", "food")
	c := newCard(1)
	fund(t, l, 1000, c)

	a := bar.pay(t, c, 300)
	b := food.pay(t, c, 200)
	// Out of order, then again with a duplicate inside the batch.
	res, err := l.Upload(ctx, org, [][]byte{b, a})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	res, err = l.Upload(ctx, org, [][]byte{a, b, a})
	require.NoError(t, err)
	require.Equal(t, []string{"duplicate", "duplicate", "duplicate"}, statuses(res))
	bal, err := l.CardBalance(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, int64(500), bal)
	mb, err := l.Balance(ctx, org, Merchant, "bar")
	require.NoError(t, err)
	require.Equal(t, int64(300), mb)

	// Same id, other content: rejected, nothing changes.
	pa, err := terminaltx.Parse(a)
	require.NoError(t, err)
	changed := pa.Tx
	changed.Amount, changed.BalanceAfter = 301, changed.BalanceBefore-301
	sc, err := terminaltx.Sign(&changed, bar.key)
	require.NoError(t, err)

	// Reusing a terminal sequence number with a new id.
	reused := pa.Tx
	reused.ID = testID()
	reused.CardSeq = 50
	sr, err := terminaltx.Sign(&reused, bar.key)
	require.NoError(t, err)

	badSig := bar.pay(t, c, 10)
	badSig[len(badSig)-1] ^= 1
	c.bal += 10

	other := newTerminal(t, l, "rogue-1", "rogue")
	otherOrg := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org + 1, Terminal: other.id, TerminalSeq: 1,
		Card: c.uid, CardSeq: 77, Amount: 1, BalanceBefore: 1, BalanceAfter: 0, Merchant: "rogue", Time: time.Now()}
	oo, err := terminaltx.Sign(&otherOrg, other.key)
	require.NoError(t, err)

	// A terminal that never enrolled.
	_, err = l.CreateTerminal(ctx, org, "ghost-1", "bar", time.Hour)
	require.NoError(t, err)
	ghost := &terminal{id: "ghost-1", merchant: "bar", key: other.key}
	gh := ghost.pay(t, c, 5)
	c.seq, c.bal = c.seq-1, c.bal+5

	res, err = l.Upload(ctx, org, [][]byte{sc.Bytes(), sr.Bytes(), badSig, gh, oo.Bytes(), []byte("junk")})
	require.NoError(t, err)
	require.Equal(t, []string{"rejected", "rejected", "rejected", "rejected", "rejected", "rejected"}, statuses(res))
	require.ErrorIs(t, res[0].Err, ErrConflict)
	require.ErrorIs(t, res[1].Err, ErrTerminalSeqReused)
	require.ErrorIs(t, res[2].Err, terminaltx.ErrSignature)
	require.ErrorIs(t, res[3].Err, ErrTerminalNotActive)
	require.ErrorIs(t, res[4].Err, ErrWrongOrganizer)
	require.ErrorIs(t, res[5].Err, terminaltx.ErrMalformed)

	// Unknown card: recorded and held, no alert.
	stranger := newCard(999)
	stranger.bal = 100
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, stranger, 10)})
	require.NoError(t, err)
	require.Equal(t, []string{"held/unknown_card"}, statuses(res))

	bal, err = l.CardBalance(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, int64(500), bal)
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Empty(t, alerts)
	requireInvariants(t, l)
}

func TestUploadUnfundedBlocksCard(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 100, c)
	c.bal = 5000 // a card that claims more than was ever loaded
	res, err := l.Submit(ctx, org, bar.pay(t, c, 4000))
	require.NoError(t, err)
	require.Equal(t, Held, res.Status)
	// The balance before does not join the store's reported top-up write
	// (a claim: a notice), and the signed debit spends more than the
	// ledger holds (blocks).
	require.ElementsMatch(t, []string{ReasonWriteConflict, ReasonUnfunded}, alertKinds(t, l))
	info, err := l.Card(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, "blocked", info.Status)
	require.Equal(t, int64(100), info.Balance)
	requireInvariants(t, l)
}

func alertKinds(t *testing.T, l *Ledger) []string {
	t.Helper()
	alerts, err := l.Alerts(context.Background(), org)
	require.NoError(t, err)
	var kinds []string
	for _, a := range alerts {
		kinds = append(kinds, a.Kind)
	}
	return kinds
}

// TestCloneBlocksCardOnce replays one card's history from two terminals
// that diverge after a copy of the card was made.
func TestCloneBlocksCardOnce(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	t1 := newTerminal(t, l, "bar-1", "bar")
	t2 := newTerminal(t, l, "bar-2", "bar")
	orig := newCard(1)
	fund(t, l, 2000, orig)

	var txs1, txs2 [][]byte
	txs1 = append(txs1, t1.pay(t, orig, 100), t1.pay(t, orig, 100))
	clone := *orig // the copy: same UID, counter and balance
	for range 3 {
		txs1 = append(txs1, t1.pay(t, orig, 50))
		txs2 = append(txs2, t2.pay(t, &clone, 70))
	}
	res, err := l.Upload(ctx, org, txs1)
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, Accepted, r.Status)
	}
	res, err = l.Upload(ctx, org, txs2)
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, Held, r.Status)
		require.Equal(t, ReasonClone, r.Reason)
	}
	// Uploading both again changes nothing and raises nothing new.
	res, err = l.Upload(ctx, org, append(append([][]byte{}, txs2...), txs1...))
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, Duplicate, r.Status)
	}
	require.Equal(t, []string{ReasonClone}, alertKinds(t, l))
	info, err := l.Card(ctx, org, orig.uid)
	require.NoError(t, err)
	require.Equal(t, "blocked", info.Status)
	require.Equal(t, int64(2000-350), info.Balance)
	// A new anomaly on the card, already blocked, in a later upload (the
	// clone's next payment does not join the original's chain): held or
	// flagged as ever, but no second alert.
	res, err = l.Upload(ctx, org, [][]byte{t2.pay(t, &clone, 10)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/chain"}, statuses(res))
	require.Equal(t, []string{ReasonClone}, alertKinds(t, l))
	requireInvariants(t, l)
}

// TestCardAccountsRemembered: uploads lock the accounts the ledger
// remembers for their cards; a remembered account that is not the card's
// (a database restored under a running ledger) is caught, and the upload
// goes to the card's own account.
func TestCardAccountsRemembered(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b := newCard(1), newCard(2)
	fund(t, l, 1000, a, b)
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 100), bar.pay(t, b, 100)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	remembered := func(c *card) (int64, bool) {
		l.cardAccts.mu.RLock()
		defer l.cardAccts.mu.RUnlock()
		id, ok := l.cardAccts.m[cardKey{org, string(c.uid)}]
		return id, ok
	}
	accountA, ok := remembered(a)
	require.True(t, ok, "an upload remembers its cards' accounts")
	accountB, ok := remembered(b)
	require.True(t, ok)
	require.NotEqual(t, accountA, accountB)
	balance := func(c *card) int64 {
		info, err := l.Card(ctx, org, c.uid)
		require.NoError(t, err)
		return info.Balance
	}
	for _, wrong := range []int64{accountB, 1 << 40} { // another card's account, then none
		l.cardAccts.mu.Lock()
		l.cardAccts.m[cardKey{org, string(a.uid)}] = wrong
		l.cardAccts.mu.Unlock()
		before := balance(b)
		res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, a, 50)})
		require.NoError(t, err)
		require.Equal(t, []string{"accepted"}, statuses(res))
		require.Equal(t, a.bal, balance(a))
		require.Equal(t, before, balance(b))
		id, ok := remembered(a)
		require.True(t, ok)
		require.Equal(t, accountA, id, "the right account is remembered again")
	}
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)
}

func TestChainBreakFlagsButPosts(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 1000, c)
	first := bar.pay(t, c, 100) // seq 2: 1000 -> 900
	c.bal += 300                // tampered: the card gained 300 without a top-up
	second := bar.pay(t, c, 100)
	// The later one arrives first; the chain is checked when the gap closes.
	res, err := l.Upload(ctx, org, [][]byte{second})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	res, err = l.Upload(ctx, org, [][]byte{first})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/chain"}, statuses(res))
	// The first upload left a gap, which blocked nothing and is resolved;
	// the chain break found when the gap closed blocks the card.
	require.Equal(t, []string{ReasonChain}, alertKinds(t, l))
	requireInvariants(t, l)
}

// TestConcurrentUploads uploads overlapping batches with duplicates and
// conflicts from many goroutines: every transaction is counted once.
func TestConcurrentUploads(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	const nCards, nTerms, perCard = 40, 4, 12
	terms := make([]*terminal, nTerms)
	for i := range terms {
		terms[i] = newTerminal(t, l, fmt.Sprintf("t-%d", i), fmt.Sprintf("m-%d", i%2))
	}
	cards := make([]*card, nCards)
	for i := range cards {
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 10_000, cards...)

	var all [][]byte
	var conflicts [][]byte
	want := map[string]int64{}
	var total int64
	for i := range perCard {
		for _, c := range cards {
			tm := terms[(i+int(c.uid[6]))%nTerms]
			amt := int64(1 + (i*7+int(c.uid[6]))%90)
			raw := tm.pay(t, c, amt)
			all = append(all, raw)
			want[tm.merchant] += amt
			total += amt
			if i%5 == 0 { // same id, other content
				p, err := terminaltx.Parse(raw)
				require.NoError(t, err)
				x := p.Tx
				x.Time = x.Time.Add(time.Second)
				s, err := terminaltx.Sign(&x, tm.key)
				require.NoError(t, err)
				conflicts = append(conflicts, s.Bytes())
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const workers = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := map[txid.ID]int{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			r := rand.New(rand.NewPCG(uint64(w), rng.Uint64()))
			mu.Unlock()
			for range 4 {
				var batch [][]byte
				for range 60 {
					batch = append(batch, all[r.IntN(len(all))])
				}
				batch = append(batch, conflicts[r.IntN(len(conflicts))])
				batch = append(batch, all[w*len(all)/workers:(w+1)*len(all)/workers]...)
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				res, err := l.Upload(ctx, org, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, x := range res {
					if x.Status == Accepted || x.Status == Held {
						accepted[x.ID]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Everything once more: each id has exactly one recorded version (the
	// original or its conflicting twin, whichever came first), the other is
	// rejected as a conflict.
	res, err := l.Upload(ctx, org, all)
	require.NoError(t, err)
	res2, err := l.Upload(ctx, org, conflicts)
	require.NoError(t, err)
	dups := map[txid.ID]int{}
	for _, x := range append(res, res2...) {
		if x.Status == Duplicate {
			dups[x.ID]++
		} else {
			require.Equal(t, Rejected, x.Status)
			require.ErrorIs(t, x.Err, ErrConflict)
		}
	}
	require.Len(t, dups, len(all))
	for _, n := range dups {
		require.Equal(t, 1, n)
	}
	require.Len(t, accepted, len(all))
	for id, n := range accepted {
		require.Equal(t, 1, n, "transaction %s accepted %d times", id, n)
	}
	for _, c := range cards {
		b, err := l.CardBalance(ctx, org, c.uid)
		require.NoError(t, err)
		require.Equal(t, c.bal, b)
	}
	for m, v := range want {
		b, err := l.Balance(ctx, org, Merchant, m)
		require.NoError(t, err)
		require.Equal(t, v, b)
	}
	var n int64
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM terminal_txs WHERE status = 'posted'`).Scan(&n))
	require.Equal(t, int64(len(all)), n)
	require.Empty(t, alertKinds(t, l))
	requireInvariants(t, l)
}

// TestConcurrentSubmit: coalesced online submissions each get their own
// result; a bad one does not affect the others.
func TestConcurrentSubmit(t *testing.T) {
	for _, opts := range []Options{{}, {SubmitFlights: 1}, {SubmitFlights: 3}} {
		t.Run(fmt.Sprintf("flights=%d", opts.SubmitFlights), func(t *testing.T) {
			testConcurrentSubmit(t, opts)
		})
	}
}

// testConcurrentSubmit submits from many goroutines at once, terminals of
// four merchants, one bad signature among them: every good transaction is
// accepted once, the bad one alone is rejected.
func testConcurrentSubmit(t *testing.T, opts Options) {
	l := newLedger(t, opts)
	ctx := context.Background()
	const n = 16
	terms := make([]*terminal, n)
	cards := make([]*card, n)
	for i := range n {
		terms[i] = newTerminal(t, l, fmt.Sprintf("t-%d", i), fmt.Sprintf("bar-%d", i%4))
		cards[i] = newCard(i + 1)
	}
	fund(t, l, 1000, cards...)
	raws := make([][][]byte, n)
	for i := range n {
		for range 5 {
			raws[i] = append(raws[i], terms[i].pay(t, cards[i], 10))
		}
	}
	bad := bytes.Clone(raws[0][4])
	bad[len(bad)-1] ^= 1
	var wg sync.WaitGroup
	results := make([][]Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, raw := range raws[i] {
				if i == 0 && k == 4 {
					raw = bad
				}
				r, err := l.Submit(ctx, org, raw)
				if err != nil {
					t.Error(err)
					return
				}
				results[i] = append(results[i], r)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		for k, r := range results[i] {
			if i == 0 && k == 4 {
				require.Equal(t, Rejected, r.Status)
				require.ErrorIs(t, r.Err, terminaltx.ErrSignature)
				continue
			}
			require.Equal(t, Accepted, r.Status, "terminal %d tx %d", i, k)
		}
	}
	var total int64
	for m := range 4 {
		b, err := l.Balance(ctx, org, Merchant, fmt.Sprintf("bar-%d", m))
		require.NoError(t, err)
		total += b
	}
	require.Equal(t, int64(10*(5*n-1)), total)
	requireInvariants(t, l)
}

// TestCloneAcrossCardWrites checks that one card sequence used by a store's
// card write (card_events) and by a terminal debit (terminal_txs, see the
// card_chain view) is a clone, whichever arrives first.
// TestClaimedCardWritesNeverBlock: a card write a store reports is a
// claim no terminal signed. A conflict between it and a terminal-signed
// debit, either way round, is a write_conflict alert for HQ and blocks
// nothing (issue 17, M4); a store's write that conflicts stays out of the
// chain, so it cannot make a later signed debit look like a clone.
func TestClaimedCardWritesNeverBlock(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	a, b, c := newCard(1), newCard(2), newCard(3)
	fund(t, l, 1000, a, b, c) // card write with sequence 1 on each

	// A debit reusing the top-up's sequence 1 (a card that did not keep
	// it, or a store that reported a write it did not make): held, noticed.
	a.seq, a.bal = 0, 1000
	res, err := l.Upload(ctx, org, [][]byte{bar.pay(t, a, 10)})
	require.NoError(t, err)
	require.Equal(t, Held, res[0].Status)
	require.Equal(t, ReasonClone, res[0].Reason)

	// A debit with sequence 2, then a store's card write claiming it too.
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, b, 10)})
	require.NoError(t, err)
	require.Equal(t, Accepted, res[0].Status)
	cashLoad(t, l, org, "store-1", b.uid, 5, &CardWrite{Seq: 2, Before: 1000, After: 1005}) // joins sequence 1, but 2 is taken

	// The attack of M4: a store reports a 1-cent write far ahead of the
	// card, at the sequence the card's next real debit will have. It does
	// not join the card's chain (sequence 2 does not follow 1 with the
	// balance 1000), so it stays out; the real debit then posts.
	cashLoad(t, l, org, "store-1", c.uid, 1, &CardWrite{Seq: 2, Before: 5, After: 6})
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 10)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))

	require.Equal(t, []string{ReasonWriteConflict, ReasonWriteConflict, ReasonWriteConflict}, alertKinds(t, l))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	for _, al := range alerts {
		require.False(t, al.Blocking)
		require.Equal(t, "open", al.State())
	}
	for c, last := range map[*card]int64{a: 1, b: 2, c: 2} {
		info, err := l.Card(ctx, org, c.uid)
		require.NoError(t, err)
		require.Equal(t, "active", info.Status)
		require.Equal(t, last, info.LastSeq)
	}
	requireInvariants(t, l)
}

// TestChainTip: uploads check a debit beyond its card's chain tip against
// the tip alone (migration 017); the tip follows terminal debits and store
// card writes, alerts still name the transaction they clash with, nothing
// but a card write moves the tip, and Verify checks it.
func TestChainTip(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 1000, c) // store write, sequence 1

	tip := func(c *card) (seq, after int64) {
		t.Helper()
		require.NoError(t, l.pool.QueryRow(ctx, `SELECT a.chain_seq, a.chain_after FROM accounts a
			JOIN cards c ON c.org_id = a.org_id AND c.account_id = a.account_id
			WHERE c.org_id = $1 AND c.card_id = $2`, org, c.uid).Scan(&seq, &after))
		return seq, after
	}
	seq, after := tip(c)
	require.Equal(t, [2]int64{1, 1000}, [2]int64{seq, after}, "a store's card write sets the tip")

	first, err := terminaltx.Parse(bar.pay(t, c, 100)) // sequence 2: 1000 -> 900
	require.NoError(t, err)
	res, err := l.Upload(ctx, org, [][]byte{first.Bytes()})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	seq, after = tip(c)
	require.Equal(t, [2]int64{2, 900}, [2]int64{seq, after}, "a terminal debit moves the tip")

	// Sequence 3 does not join the tip: the alert names the tip's debit.
	c.bal = 950
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 50)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/chain"}, statuses(res))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.NotNil(t, alerts[0].OtherTxn)
	require.Equal(t, first.ID, *alerts[0].OtherTxn)
	seq, after = tip(c)
	require.Equal(t, [2]int64{3, 900}, [2]int64{seq, after})

	// A debit filling a gap below the tip does not move it.
	c.seq, c.bal = 3, 900
	gap := bar.pay(t, c, 10)                                   // sequence 4
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 10)}) // sequence 5
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	require.Equal(t, []string{ReasonChain, ReasonSequenceGap}, alertKinds(t, l))
	res, err = l.Upload(ctx, org, [][]byte{gap})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	require.Equal(t, []string{ReasonChain}, alertKinds(t, l), "the gap closed")
	seq, after = tip(c)
	require.Equal(t, [2]int64{5, 880}, [2]int64{seq, after})

	// On another card, a store write at sequence 2, then a debit at 3 that
	// does not join it: the alert names the store's write.
	d := newCard(2)
	require.NoError(t, l.RegisterCards(ctx, org, "fest", [][]byte{d.uid}))
	topUp := cashLoad(t, l, org, "store-1", d.uid, 100, &CardWrite{Seq: 2, Before: 0, After: 100})
	seq, after = tip(d)
	require.Equal(t, [2]int64{2, 100}, [2]int64{seq, after})
	d.seq, d.bal = 2, 90
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, d, 10)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted/chain"}, statuses(res))
	alerts, err = l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	require.Equal(t, topUp, *alerts[1].OtherTxn)
	seq, after = tip(d)
	require.Equal(t, [2]int64{3, 80}, [2]int64{seq, after})
	requireInvariants(t, l)

	// Nothing else moves the tip.
	_, err = l.pool.Exec(ctx, `UPDATE accounts SET chain_seq = 1 WHERE chain_seq = 5`)
	require.ErrorContains(t, err, "card chain tips only through card writes")

	// Verify notices a tip that is not the last card write.
	_, err = l.pool.Exec(ctx, `ALTER TABLE accounts DISABLE TRIGGER accounts_guard_balance;
		UPDATE accounts SET chain_seq = 4 WHERE chain_seq = 5;
		ALTER TABLE accounts ENABLE TRIGGER accounts_guard_balance`)
	require.NoError(t, err)
	var inv *InvariantError
	require.ErrorAs(t, l.Verify(ctx), &inv)
	require.Equal(t, "a card's chain tip differs from its last card write", inv.Problem)
}

// TestUploadWritePaths: an upload written with INSERT (small) and one
// written with COPY (large) record the same thing: every field, the
// earliest and latest times a transaction may carry included, reads back
// exactly, so that a re-upload is a duplicate and not a conflict.
func TestUploadWritePaths(t *testing.T) {
	for _, path := range []struct {
		name    string
		copyMin int
	}{{"insert", 1 << 30}, {"copy", 1}} {
		t.Run(path.name, func(t *testing.T) {
			l := newLedger(t)
			l.copyMinRows = path.copyMin
			ctx := context.Background()
			tm := newTerminal(t, l, "bar-1", "drinks")
			cards := []*card{newCard(1), newCard(2), newCard(3)}
			fund(t, l, 1_000, cards...)
			times := []time.Time{time.UnixMilli(1), time.UnixMilli(253402300799999), time.Now()}
			var batch [][]byte
			for i, c := range cards {
				tm.seq++
				c.seq++
				tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id,
					TerminalSeq: tm.seq, Card: c.uid, CardSeq: c.seq, Amount: int64(100 * (i + 1)),
					BalanceBefore: c.bal, BalanceAfter: c.bal - int64(100*(i+1)), Merchant: tm.merchant, Time: times[i]}
				c.bal = tx.BalanceAfter
				s, err := terminaltx.Sign(&tx, tm.key)
				require.NoError(t, err)
				batch = append(batch, s.Bytes())
			}
			// An unfunded debit is held and names no accounts (NULLs).
			c := cards[0]
			tm.seq++
			c.seq++
			tx := terminaltx.Tx{Kind: terminaltx.KindDebit, ID: testID(), Organizer: org, Terminal: tm.id,
				TerminalSeq: tm.seq, Card: c.uid, CardSeq: c.seq, Amount: 5_000, BalanceBefore: 5_000,
				BalanceAfter: 0, Merchant: tm.merchant, Time: time.Now()}
			s, err := terminaltx.Sign(&tx, tm.key)
			require.NoError(t, err)
			batch = append(batch, s.Bytes())

			res, err := l.Upload(ctx, org, batch)
			require.NoError(t, err)
			require.Equal(t, []string{"accepted", "accepted", "accepted", "held/unfunded"}, statuses(res))
			res, err = l.Upload(ctx, org, batch)
			require.NoError(t, err)
			require.Equal(t, []string{"duplicate", "duplicate", "duplicate", "duplicate"}, statuses(res))

			for i, raw := range batch {
				want, err := terminaltx.Parse(raw)
				require.NoError(t, err)
				var at time.Time
				var cardAcct, merchantAcct *int64
				var chained bool
				require.NoError(t, l.pool.QueryRow(ctx, `SELECT at, card_account, merchant_account, chained
					FROM terminal_txs WHERE org_id = $1 AND txn_id = $2`, org, want.ID.String()).
					Scan(&at, &cardAcct, &merchantAcct, &chained))
				require.True(t, want.Time.Equal(at), "time %s stored as %s", want.Time, at)
				require.True(t, chained)
				require.Equal(t, i < 3, cardAcct != nil && merchantAcct != nil, "posted rows name their accounts")
			}
			for _, c := range cards {
				b, err := l.CardBalance(ctx, org, c.uid)
				require.NoError(t, err)
				require.Equal(t, c.bal, b)
			}
			m, err := l.Balance(ctx, org, Merchant, "drinks")
			require.NoError(t, err)
			require.Equal(t, int64(600), m)
			requireInvariants(t, l)
		})
	}
}

// A debit the card committed is never lost: a correctly signed debit that
// names a merchant other than its terminal's, or comes from a terminal
// since revoked, is recorded and held with an alert naming the reason. The
// alert does not block the card, and the debit keeps its place in the
// card's chain. (Failure 4 of issue 16: the debit was rejected and lost.)
func TestUploadHoldsDebitsTheTerminalGotWrong(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	food := newTerminal(t, l, "food-1", "food")
	c := newCard(1)
	fund(t, l, 1000, c)

	// The bar terminal signs for the food merchant.
	bar.merchant = "food"
	wrong := bar.pay(t, c, 300)
	bar.merchant = "bar"
	res, err := l.Upload(ctx, org, [][]byte{wrong})
	require.NoError(t, err)
	require.Equal(t, []string{"held/wrong_merchant"}, statuses(res))
	res, err = l.Upload(ctx, org, [][]byte{wrong})
	require.NoError(t, err)
	require.Equal(t, []string{"duplicate"}, statuses(res))

	// The card's next debit joins the held one: no chain alert.
	res, err = l.Upload(ctx, org, [][]byte{bar.pay(t, c, 100)})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))

	// A terminal revoked after it enrolled: held, online too.
	require.NoError(t, l.RevokeTerminal(ctx, org, "food-1"))
	r, err := l.Submit(ctx, org, food.pay(t, c, 50))
	require.NoError(t, err)
	require.Equal(t, Held, r.Status)
	require.Equal(t, ReasonTerminalRevoked, r.Reason)

	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 2)
	require.Equal(t, ReasonWrongMerchant, alerts[0].Kind)
	require.Contains(t, alerts[0].Detail, "bar-1 of merchant bar signed a debit of 300 for merchant food")
	require.Equal(t, ReasonTerminalRevoked, alerts[1].Kind)

	info, err := l.Card(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, "active", info.Status, "the terminal's fault does not block the card")
	require.Equal(t, int64(900), info.Balance, "held debits are not posted")
	require.Equal(t, int64(4), info.LastSeq)
	for m, want := range map[string]int64{"bar": 100, "food": 0} {
		got, err := l.Balance(ctx, org, Merchant, m)
		require.NoError(t, err)
		require.Equal(t, want, got, m)
	}
	var held []string
	rows, err := l.pool.Query(ctx, `SELECT hold_reason FROM terminal_txs WHERE org_id = $1 AND status = 'held' ORDER BY card_seq`, org)
	require.NoError(t, err)
	held, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{ReasonWrongMerchant, ReasonTerminalRevoked}, held)
	requireInvariants(t, l)
}

// A card sequence that skips numbers raises a sequence_gap alert that does
// not block the card; the late debit that fills the gap raises nothing.
// (Failure 4 of issue 16: a gap raised nothing.)
func TestUploadSequenceGapAlerts(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	bar := newTerminal(t, l, "bar-1", "bar")
	c := newCard(1)
	fund(t, l, 1000, c)
	first := bar.pay(t, c, 100) // sequence 2
	late := bar.pay(t, c, 100)  // 3, uploaded later
	third := bar.pay(t, c, 100) // 4
	res, err := l.Upload(ctx, org, [][]byte{third, first})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted", "accepted"}, statuses(res))
	alerts, err := l.Alerts(ctx, org)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	require.Equal(t, ReasonSequenceGap, alerts[0].Kind)
	require.Equal(t, "nothing recorded at card sequence 3 before sequence 4", alerts[0].Detail)

	// The late debit closes the gap: the alert is resolved.
	res, err = l.Upload(ctx, org, [][]byte{late})
	require.NoError(t, err)
	require.Equal(t, []string{"accepted"}, statuses(res))
	require.Empty(t, alertKinds(t, l))
	var resolved int
	require.NoError(t, l.pool.QueryRow(ctx, `SELECT count(*) FROM card_alerts WHERE resolved_at IS NOT NULL`).Scan(&resolved))
	require.Equal(t, 1, resolved, "kept for the record")
	// Online, and beyond the tip.
	c.seq++
	r, err := l.Submit(ctx, org, bar.pay(t, c, 100)) // 6
	require.NoError(t, err)
	require.Equal(t, Accepted, r.Status)
	require.Equal(t, []string{ReasonSequenceGap}, alertKinds(t, l))

	info, err := l.Card(ctx, org, c.uid)
	require.NoError(t, err)
	require.Equal(t, "active", info.Status)
	require.Equal(t, int64(600), info.Balance)
	requireInvariants(t, l)
}
