package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	voied25519 "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"

	"github.com/loopcard/loopcard/ledger/internal/edbatch"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Errors that reject one terminal transaction of an upload.
var (
	ErrConflict          = errors.New("ledger: transaction id already used with other content")
	ErrTerminalSeqReused = errors.New("ledger: terminal sequence number already used by another transaction")
	ErrWrongOrganizer    = errors.New("ledger: transaction belongs to another organizer")
)

// Status is the outcome of one uploaded terminal transaction.
type Status int

const (
	// Accepted: recorded now and posted (card → merchant).
	Accepted Status = iota + 1
	// Held: recorded now but not posted, see Result.Reason; an alert was
	// raised unless the card is unknown and the terminal not at fault. The
	// terminal must not upload it again (doing so is harmless).
	Held
	// Duplicate: recorded earlier with the same content; nothing changed.
	Duplicate
	// Rejected: not recorded, see Result.Err; the terminal should keep it
	// and report it.
	Rejected
)

func (s Status) String() string {
	switch s {
	case Accepted:
		return "accepted"
	case Held:
		return "held"
	case Duplicate:
		return "duplicate"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Reasons a transaction is held or a card alert raised.
const (
	ReasonClone       = "clone"        // another transaction has the same card sequence
	ReasonChain       = "chain"        // balance chain does not join its neighbours
	ReasonUnfunded    = "unfunded"     // the ledger holds less credit than the card spent
	ReasonUnknownCard = "unknown_card" // the card was never registered

	// Held because of the terminal, with an alert that does not block the
	// card: the card did commit the debit, so it is recorded and takes its
	// place in the card's chain, but the merchant is not credited until HQ
	// resolves it.
	ReasonWrongMerchant   = "wrong_merchant"   // signed for a merchant other than the terminal's
	ReasonTerminalRevoked = "terminal_revoked" // the terminal was revoked after it enrolled

	// ReasonRefundedCard: the debit reached the ledger after its card's
	// refund was paid out (a terminal that stayed offline past the sync
	// window, see ExportPayouts). It is posted: the merchant is paid from
	// the organizer's RefundLosses account, and HQ gets an alert that does
	// not block the card.
	ReasonRefundedCard = "refunded_card"

	// ReasonSequenceGap: the card's sequence skips numbers before this
	// transaction (the ledger holds nothing at the sequence before it). The
	// transaction is posted and the card stays active: a late upload from
	// another terminal may fill the gap, and when a debit lands at the
	// missing sequence the alert is resolved (Alerts no longer lists it).
	// A gap that stays open is a debit some terminal has not uploaded, or
	// a credit written without its card write being recorded.
	ReasonSequenceGap = "sequence_gap"
	// A card write reported by a store or station (LoadPending) conflicts
	// with the card's chain, or a terminal-signed transaction conflicts
	// with such a report: a claim, not signed evidence, so an alert for
	// HQ that does not block the card.
	ReasonWriteConflict = "write_conflict"
)

// terminalHold returns why a correctly signed debit of an enrolled terminal
// is held because of its terminal, or "" when the terminal is not at fault.
func terminalHold(ti terminalInfo, s *terminaltx.Signed) string {
	switch {
	case ti.revoked:
		return ReasonTerminalRevoked
	case s.Merchant != ti.merchant:
		return ReasonWrongMerchant
	}
	return ""
}

// Result is the outcome of one transaction of an upload, in upload order.
type Result struct {
	ID     txid.ID // zero when the bytes did not parse
	Status Status
	Reason string // for Held, and for Accepted with a chain alert
	Err    error  // for Rejected
}

// Submit records one terminal transaction online: the path of a connected
// terminal, returning once the transaction is durably recorded. Concurrent
// Submit calls are coalesced: while a database transaction commits, the
// calls that arrive meanwhile wait and go together into the next one (group
// commit), each getting its own Result. A malformed or conflicting
// transaction affects only its own Result; an error (database unavailable,
// ctx done) leaves the caller not knowing whether the transaction was
// recorded, so it must submit it again, which is always safe. See Upload.
//
// The signatures of a coalesced batch are verified together, as an
// upload's are (Ed25519 batch verification, see verifyAll): at 8 clients
// that took the ledger's CPU per transaction from 207-223 us, verifying each
// on its caller's goroutine, to 167-172 us (scripts/bench ledger, online
// phase, same hour).
func (l *Ledger) Submit(ctx context.Context, org int64, raw []byte) (Result, error) {
	req := &submission{org: org, raw: raw, done: make(chan struct{})}
	q := l.submits
	q.mu.Lock()
	q.queue = append(q.queue, req)
	lead := q.running < q.flights
	if lead {
		q.running++
	}
	q.mu.Unlock()
	if lead {
		l.flushSubmissions(q)
	} else {
		select {
		case q.arrived <- struct{}{}:
		default:
		}
	}
	select {
	case <-req.done:
		return req.res, req.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// DefaultSubmitFlights is how many coalesced batches of Submit are in
// flight at once unless Options say otherwise. Two measured best
// (scripts/bench ledger, 8 clients): while one batch waits for its commit,
// the next one locks and reads its cards, and then waits only for the
// shared merchant accounts the first one still holds.
const DefaultSubmitFlights = 2

// submitQueue is Submit's queue of submissions and its coalesced batches in
// flight.
type submitQueue struct {
	mu      sync.Mutex
	queue   []*submission
	running int           // batches in flight
	flights int           // at most this many
	last    int           // submissions the last batch took
	arrived chan struct{} // a submission was queued (capacity 1)
}

func newSubmitQueue(flights int) *submitQueue {
	return &submitQueue{flights: flights, arrived: make(chan struct{}, 1)}
}

// maxCoalesceWait bounds how long a coalesced batch waits for more
// submissions (see await): a small part of a commit's latency.
const maxCoalesceWait = 200 * time.Microsecond

// await waits, at most maxCoalesceWait, until as many submissions are
// queued as the last batch took. Under steady load the submitters
// that batch answered come back within tens of microseconds, and one
// database transaction for all of them costs little more than one for a
// few; under light load the last batch was small and nothing waits.
func (q *submitQueue) await() {
	// Let submitters that are about to queue run first.
	runtime.Gosched()
	deadline := time.Now().Add(maxCoalesceWait)
	var timer *time.Timer
	for {
		q.mu.Lock()
		enough := len(q.queue) >= q.last
		q.mu.Unlock()
		wait := time.Until(deadline)
		if enough || wait <= 0 {
			return
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		} else {
			timer.Reset(wait)
		}
		select {
		case <-q.arrived:
		case <-timer.C:
			return
		}
	}
}

type submission struct {
	org  int64
	raw  []byte
	res  Result
	err  error
	done chan struct{}
}

// flushSubmissions uploads the queued submissions, one batch per
// organizer. When more arrived meanwhile, a new goroutine takes them over,
// so that the caller, whose own submission is done, returns at once.
func (l *Ledger) flushSubmissions(q *submitQueue) {
	q.await()
	q.mu.Lock()
	queue := q.queue
	q.queue = nil
	q.last = len(queue)
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		if len(q.queue) > 0 {
			go l.flushSubmissions(q)
		} else {
			q.running--
		}
		q.mu.Unlock()
	}()
	byOrg := map[int64][]*submission{}
	for _, r := range queue {
		byOrg[r.org] = append(byOrg[r.org], r)
	}
	for org, reqs := range byOrg {
		raws := make([][]byte, len(reqs))
		for i, r := range reqs {
			raws[i] = r.raw
		}
		// The batch is not tied to any one caller's context.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t0 := time.Now()
		res, err := l.Upload(ctx, org, raws)
		cancel()
		l.log.Debug("ledger: coalesced submissions", "count", len(raws), "took", time.Since(t0))
		for i, r := range reqs {
			if err != nil {
				r.err = err
			} else {
				r.res = res[i]
			}
			close(r.done)
		}
	}
}

// Upload records a batch of signed terminal transactions (encodings of
// package terminaltx) of organizer org in one database transaction, and
// returns one Result per transaction. Each transaction is accepted exactly
// once: the same id with the same content again is a Duplicate, with other
// content it is Rejected with ErrConflict. Signatures are checked against
// the terminals' enrolled keys; a transaction of a terminal that never
// enrolled is Rejected (ErrTerminalNotActive). Arrivals may be late, out of
// order and repeated.
//
// The ledger never forgets a debit that a card committed: a correctly
// signed debit of an enrolled terminal is recorded whatever else is wrong
// with it. One naming a merchant other than its terminal's, or from a
// terminal since revoked, is held with an alert naming the reason
// (ReasonWrongMerchant, ReasonTerminalRevoked) for HQ to resolve; those
// alerts do not block the card.
//
// Per card, the ledger tracks the sequence numbers and the balance chain:
// a second transaction with a card sequence already used (a clone) is held,
// a balance that does not join the neighbouring sequence numbers is posted
// but flagged, and a debit the ledger's credit does not cover is held; each
// of these blocks an active card and raises one alert. A transaction whose
// card sequence skips numbers (nothing recorded at the sequence before it)
// raises a ReasonSequenceGap alert that does not block the card.
//
// The error is non-nil only when the batch could not be processed at all
// (database unavailable); then nothing was recorded.
func (l *Ledger) Upload(ctx context.Context, org int64, raws [][]byte) ([]Result, error) {
	res := make([]Result, len(raws))
	txs := make([]*terminaltx.Signed, len(raws))
	termSet := map[string]bool{}
	for i, raw := range raws {
		s, err := terminaltx.Parse(raw)
		if err != nil {
			res[i] = Result{Status: Rejected, Err: err}
			continue
		}
		res[i].ID = s.ID
		if s.Organizer != org {
			res[i].Status, res[i].Err = Rejected, ErrWrongOrganizer
			continue
		}
		txs[i] = s
		termSet[s.Terminal] = true
	}
	terms := make([]string, 0, len(termSet))
	for t := range termSet {
		terms = append(terms, t)
	}
	var active map[string]terminalInfo
	if len(terms) > 0 {
		var err error
		if active, err = l.enrolledTerminals(ctx, org, terms); err != nil {
			return nil, err
		}
	}
	for i, s := range txs {
		if s == nil {
			continue
		}
		if _, ok := active[s.Terminal]; !ok {
			res[i].Status, res[i].Err = Rejected, ErrTerminalNotActive
			txs[i] = nil
		}
	}
	l.verifyAll(txs, active, res)

	// The same id twice in one batch: the first one stands for both.
	first := make(map[txid.ID]int, len(txs))
	var todo []int
	for i, s := range txs {
		if s == nil {
			continue
		}
		if j, ok := first[s.ID]; ok {
			if s.ContentHash() == txs[j].ContentHash() {
				res[i].Status = Duplicate
			} else {
				res[i].Status, res[i].Err = Rejected, ErrConflict
			}
			continue
		}
		first[s.ID] = i
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return res, nil
	}
	// Cards in order, then each card's transactions by card sequence.
	sort.Slice(todo, func(a, b int) bool {
		x, y := txs[todo[a]], txs[todo[b]]
		if c := bytes.Compare(x.Card, y.Card); c != 0 {
			return c < 0
		}
		if x.CardSeq != y.CardSeq {
			return x.CardSeq < y.CardSeq
		}
		return todo[a] < todo[b]
	})
	var out []Result
	// The first attempt assumes that every transaction is new, which is the
	// rule: it does not look the ids and terminal sequences up, and the
	// unique indexes on them refuse the batch if one is not. The retry
	// after that looks them up (see apply).
	careful := false
	var err error
	for range 2 {
		err = l.inPipelinedTx(ctx, func(q batchSender) error {
			var err error
			out, err = l.apply(ctx, q, org, txs, todo, active, careful)
			if isUniqueViolation(err) {
				careful = true
			}
			return err
		})
		if !errors.Is(err, errStaleCardAccount) {
			break
		}
		// The cards' accounts are forgotten; the next try looks them up.
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: upload: %w", err)
	}
	for k, i := range todo {
		out[k].ID = res[i].ID
		res[i] = out[k]
	}
	for i := range res {
		if res[i].Status == Duplicate && res[i].Err == nil {
			// A duplicate within the batch shares the fate of its first copy.
			if j, ok := first[res[i].ID]; ok && j != i && res[j].Status == Rejected {
				res[i] = res[j]
			}
		}
	}
	return res, nil
}

// verifyAll checks signatures, rejecting and dropping the bad ones. The
// batch is split into one chunk per worker; each chunk is checked with
// Ed25519 batch verification (one multi-scalar multiplication, about 2-3
// times cheaper per signature than one verification each, and cheaper
// still because the signatures of one terminal share their key term: see
// edbatch), and only a chunk that fails is verified signature by signature
// to find the bad ones. Both are cofactored and refuse small-order and
// non-canonical points (curve25519-voi's default rules).
func (l *Ledger) verifyAll(txs []*terminaltx.Signed, active map[string]terminalInfo, res []Result) {
	var todo []int
	for i, s := range txs {
		if s != nil {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return
	}
	chunks := min(l.workers, (len(todo)+minVerifyChunk-1)/minVerifyChunk)
	if chunks <= 1 {
		l.verifyChunk(txs, active, res, todo)
		return
	}
	var wg sync.WaitGroup
	size := (len(todo) + chunks - 1) / chunks
	for lo := 0; lo < len(todo); lo += size {
		part := todo[lo:min(lo+size, len(todo))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.verifyChunk(txs, active, res, part)
		}()
	}
	wg.Wait()
}

// minVerifyChunk is the smallest number of signatures worth a goroutine of
// its own. Batch verification grows cheaper per signature with the batch
// (about 11 us at 64, 8 us at 500 by one key on the bench machine), and
// concurrent uploads keep the processors busy anyway: a batch is split
// only when it is large enough that each part is still a good batch.
const minVerifyChunk = 512

// minBatchVerify is the smallest number of signatures checked as a batch;
// fewer are checked one by one.
const minBatchVerify = 4

// verifyChunk checks the signatures of txs[idx...].
func (l *Ledger) verifyChunk(txs []*terminaltx.Signed, active map[string]terminalInfo, res []Result, idx []int) {
	if len(idx) >= minBatchVerify {
		bv := edbatch.NewVerifier(len(idx))
		ok := true
		for _, i := range idx {
			ti := active[txs[i].Terminal]
			if ti.batchKey == nil {
				ok = false
				break
			}
			bv.Add(ti.batchKey, txs[i].Payload(), txs[i].Signature)
		}
		if ok && bv.Verify(nil) {
			return
		}
	}
	for _, i := range idx {
		if err := verifySignature(active[txs[i].Terminal], txs[i]); err != nil {
			res[i].Status, res[i].Err = Rejected, err
			txs[i] = nil
		}
	}
}

// verifySignature checks one signature with the rules of batch
// verification (cofactored, small-order keys refused: curve25519-voi's
// defaults), so that a signature's fate does not depend on the company it
// arrives in; with the key decompressed once per terminal it is also about
// twice as fast as crypto/ed25519.Verify.
func verifySignature(ti terminalInfo, s *terminaltx.Signed) error {
	if ti.xpub == nil || len(ti.pub) != ed25519.PublicKeySize || len(s.Signature) != ed25519.SignatureSize ||
		!voied25519.VerifyExpandedWithOptions(ti.xpub, s.Payload(), s.Signature, &voied25519.Options{}) {
		return terminaltx.ErrSignature
	}
	return nil
}

type seqKey struct {
	card string
	seq  int64
}

type cardEvent struct {
	txn           txid.ID
	before, after int64
	// claimed: a card write reported by a store or station (card_events),
	// not a terminal-signed transaction. A conflict with a claim is a
	// notice for HQ, never a block (see decide).
	claimed bool
}

type termSeq struct {
	terminal string
	seq      int64
}

// apply records the transactions txs[todo...] (sorted by card and card
// sequence) in tx and returns their results in the order of todo. It locks
// and reads; decide (decide.go) classifies each transaction from what was
// read; apply then writes what decide answered.
//
// Unless careful, apply does not look up whether the transaction ids and
// terminal sequence numbers were recorded before: it assumes they were not,
// and if one was, inserting it fails on a unique index (isUniqueViolation)
// and nothing is recorded; the caller then applies the batch again,
// carefully. Uploads of new transactions, nearly all of them, save two
// index lookups per transaction; a re-upload costs one failed attempt.
//
// Nor, unless careful, does it look up the card chain rows next to each
// transaction: the chain tip read with each card's lock answers for a
// transaction beyond it, and only the others are looked up, in a round
// trip of their own.
//
// q is a connection with no transaction open: the first batch sent opens
// the transaction (BEGIN) and the last one commits it (COMMIT), so that
// the whole upload takes two round trips, one more when a transaction lands
// at or below its card's tip and one more when an alert is raised (for
// the cards' statuses); see inPipelinedTx. The cards are locked through
// their accounts, remembered from earlier uploads (see cardlock.go); a
// remembered account that proves wrong fails the attempt with
// errStaleCardAccount.
func (l *Ledger) apply(ctx context.Context, tx batchSender, org int64, txs []*terminaltx.Signed, todo []int, active map[string]terminalInfo, careful bool) ([]Result, error) {
	out := make([]Result, len(todo))
	var (
		cards    [][]byte
		cardArg  = make([][]byte, len(todo))
		cardSeqs = make([]int64, len(todo))
	)
	for k, i := range todo {
		s := txs[i]
		if k == 0 || !bytes.Equal(s.Card, txs[todo[k-1]].Card) {
			cards = append(cards, s.Card)
		}
		cardArg[k], cardSeqs[k] = s.Card, int64(s.CardSeq)
	}
	// Lock the cards' accounts, reading their balances and chain tips, and,
	// when careful, read what the database holds about these ids, terminal
	// sequences and card chains, in one round trip. The lookups are index
	// scans by key (= ANY, or nested loops over the keys: LATERAL ...
	// OFFSET 0): a batch touches few rows of large tables.
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// Plan each statement once per connection. Their arrays of keys would
	// otherwise get a custom plan every time: the planner knows a constant
	// array's length, so for the few keys of an online batch it finds the
	// custom plan cheaper than the generic one and never switches, and
	// planning the card lock every time was measured at about a fifth of
	// the server's time on online submissions. The statements are shaped so
	// that their generic plans are index lookups per key; enable_seqscan =
	// off keeps the scan of the card accounts by id an index scan even in a
	// generic plan made while the tables were small (see
	// queueLockCardAccounts).
	// The rows name the voucher credit they spend (migration 029).
	b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true),
		set_config('loopcard.nonrefundable_on_rows', 'on', true)`)
	states := make(map[string]*cardState, len(cards))
	lock := l.queueLockCardAccounts(b, org, cards, states)
	var merchantIDs []string
	seenMerchant := map[string]bool{}
	for _, i := range todo {
		if m := txs[i].Merchant; !seenMerchant[m] {
			seenMerchant[m] = true
			merchantIDs = append(merchantIDs, m)
		}
	}
	// The voucher credit of the cards remembered to have some, read after
	// their lock in this round trip (none for other uploads).
	remembered := l.queueReadRememberedNonRefundable(b, org, cards, merchantIDs)
	existing := map[txid.ID][32]byte{} // content hashes of recorded ids
	usedSeq := map[termSeq]txid.ID{}
	events := make(map[seqKey]cardEvent, len(todo)+len(cards)) // the batch, and the tips or rows next to it
	if careful {
		queueReadRecorded(b, org, txs, todo, existing, usedSeq)
		queueReadChain(b, org, cardArg, cardSeqs, events)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("ledger: lock and read cards: %w", err)
	}
	if err := lock.finish(l); err != nil {
		return nil, err
	}
	// The cards' non-refundable parts, spent first (see below), and the
	// accounts they are spent into: for uploads with a card that has one,
	// read with the lock when remembered, else now, with the chain lookups
	// below if any, and remembered.
	lb := &pgx.Batch{}
	contras := map[string]int64{}
	rememberNR := false
	if lock.nonRefundable {
		done := remembered != nil && remembered.all && !remembered.stale
		for _, st := range states {
			if !done {
				break
			}
			if st.nrAccount != 0 {
				bal, ok := remembered.balances[st.nrAccount]
				st.nrBalance, done = bal, ok
			}
		}
		if done {
			contras = remembered.contras
		} else {
			if remembered != nil && remembered.stale {
				l.cardAccts.forgetNonRefundable()
			}
			queueReadNonRefundable(lb, org, states, merchantIDs, contras)
			rememberNR = true
		}
	}
	if !careful {
		// The chain rows next to a transaction are looked up only when the
		// card's chain tip, read with its lock, does not answer for them: a
		// transaction beyond the tip has no row after it and at most the tip
		// before it. The tip stands in for its row, of which only the
		// balance after is known; it is consulted only as the row before a
		// transaction whose balance before matches it, because every other
		// use (a transaction at or below the tip, or one that does not join
		// it and needs the tip's id for its alert) looks the row up, and
		// rows looked up replace the stand-ins.
		for card, st := range states {
			if st.chainSeq >= 0 {
				events[seqKey{card, st.chainSeq}] = cardEvent{after: st.chainAfter}
			}
		}
		var lookCards [][]byte
		var lookSeqs []int64
		for k, i := range todo {
			s, st := txs[i], states[string(txs[i].Card)]
			if st == nil {
				continue
			}
			seq := int64(s.CardSeq)
			if seq <= st.chainSeq || (seq == st.chainSeq+1 && s.BalanceBefore != st.chainAfter) {
				lookCards, lookSeqs = append(lookCards, cardArg[k]), append(lookSeqs, seq)
			}
		}
		if len(lookCards) > 0 {
			queueReadChain(lb, org, lookCards, lookSeqs, events)
		}
	}
	if lb.Len() > 0 {
		if err := tx.SendBatch(ctx, lb).Close(); err != nil {
			return nil, fmt.Errorf("ledger: read card chains: %w", err)
		}
	}
	if rememberNR {
		l.cardAccts.rememberNonRefundable(org, states, contras)
	}

	var (
		rec       = newTerminalRows(len(todo))
		alerts    []alert
		blocking  int // alerts that block their cards
		filled    gapFills
		merchants []int64 // merchant accounts credited, each once (and refund losses)
		unfunded  []lateDebit
		credited  = map[int64]bool{}
	)
	// Each transaction in turn: gather what was read about it, as the
	// transactions before it in the batch left it, let decide classify it,
	// and carry out the verdict. The cards' statuses were not read with
	// their locks: a blocking alert is raised for the first anomaly of each
	// card in the batch, and those of cards that turn out not to be active
	// (blocked before) are dropped below.
	for k, i := range todo {
		s := txs[i]
		st := states[string(s.Card)]
		sk := seqKey{string(s.Card), int64(s.CardSeq)}
		ts := termSeq{s.Terminal, s.TerminalSeq}
		f := facts{tx: s, terminal: active[s.Terminal]}
		f.recordedHash, f.recorded = existing[s.ID]
		f.seqOwner, f.seqTaken = usedSeq[ts]
		if st != nil {
			f.card = cardFacts{known: true, balance: st.balance, blocked: st.blocked}
			f.prev.cardEvent, f.prev.ok = events[seqKey{sk.card, sk.seq - 1}]
			f.at.cardEvent, f.at.ok = events[sk]
			f.next.cardEvent, f.next.ok = events[seqKey{sk.card, sk.seq + 1}]
		}
		v := decide(&f)
		out[k] = v.result()
		if v.status == Duplicate || v.status == Rejected {
			continue
		}
		usedSeq[ts] = s.ID
		for _, a := range v.alerts[:v.nAlerts] {
			a.id = l.newID()
			alerts = append(alerts, a)
			if a.notice {
				l.log.Warn("card alert", "org", org, "card", terminaltx.CardHex(s.Card), "reason", a.kind, "txn", s.ID.String(), "terminal", s.Terminal, "detail", a.detail)
			}
		}
		if v.blocks {
			st.blocked = true
			blocking++
		}
		var cardAccount, merchantAccount int64 // set when posted
		var nr nrSpend
		if v.posts() {
			st.balance -= s.Amount
			cardAccount, merchantAccount = st.account, f.terminal.merchantAccount
			if !credited[merchantAccount] {
				credited[merchantAccount] = true
				merchants = append(merchants, merchantAccount)
			}
			// A card's non-refundable part is spent first, in card
			// sequence order (todo's), up to what is left of it: into the
			// merchant's nonrefundable_credit, or the organizer's. Every
			// debit of a card that has such a part says what it spent, 0
			// too (migration 029's trigger spends it for rows that do not).
			if st.nrAccount != 0 {
				contra, ok := contras[s.Merchant]
				if !ok {
					contra = contras[""]
				}
				nr = nrSpend{account: st.nrAccount, contra: contra, amount: min(s.Amount, st.nrBalance)}
				st.nrBalance -= nr.amount
				if nr.amount > 0 && !credited[contra] {
					credited[contra] = true
					merchants = append(merchants, contra)
				}
			}
		}
		if v.chained {
			events[sk] = cardEvent{txn: s.ID, before: s.BalanceBefore, after: s.BalanceAfter}
		}
		if v.closesGap {
			filled.add(s.Card, f.next.txn)
		}
		if v.status == Held && v.reason == ReasonUnfunded {
			unfunded = append(unfunded, lateDebit{k: k, row: len(rec.ids), tx: s, merchantAccount: f.terminal.merchantAccount})
		}
		rec.add(s, v.dbStatus(), v.reason, v.chained, cardAccount, merchantAccount, nr)
	}
	var late entryRows // debits of cards whose refund was paid out
	if blocking > 0 {
		var err error
		var lossAccount int64
		if alerts, lossAccount, err = l.activeCardAlerts(ctx, tx, org, alerts, states, len(unfunded) > 0); err != nil {
			return nil, err
		}
		var entries []entry
		for _, d := range unfunded {
			if !states[string(d.tx.Card)].paidOut {
				continue
			}
			// The card's refund was paid out before this debit reached the
			// ledger: the merchant is paid from refund losses, and HQ told.
			rec.statuses[d.row], rec.reasons[d.row] = "posted", ReasonRefundedCard
			out[d.k] = Result{Status: Accepted, Reason: ReasonRefundedCard}
			entries = append(entries, entry{id: d.tx.ID, kind: "refunded_card_debit", ref: terminaltx.CardHex(d.tx.Card),
				at: d.tx.Time, postings: transfer(lossAccount, d.merchantAccount, d.tx.Amount)})
			a := alert{id: l.newID(), card: d.tx.Card, kind: ReasonRefundedCard, txn: d.tx.ID, notice: true,
				detail: fmt.Sprintf("debit of %d for merchant %s reached the ledger after the card's credit was paid out or moved to its replacement; paid from refund losses", d.tx.Amount, d.tx.Merchant)}
			alerts = append(alerts, a)
			l.log.Warn("card alert", "org", org, "card", terminaltx.CardHex(d.tx.Card), "reason", a.kind, "txn", d.tx.ID.String(), "terminal", d.tx.Terminal, "detail", a.detail)
			for _, acct := range []int64{lossAccount, d.merchantAccount} {
				if !credited[acct] {
					credited[acct] = true
					merchants = append(merchants, acct)
				}
			}
		}
		if err := late.add(entries, nil); err != nil {
			return nil, err
		}
	}
	// All writes in one statement: the terminal transactions, which hold
	// their place in the card's chain (migration 015) and whose trigger posts
	// the debits (migration 011). A large upload is written with COPY, a
	// small one with INSERT (see copyRows); the trigger is the same. The
	// card accounts are locked with their cards; merchant accounts, when
	// several, are locked here in the fixed order, which the trigger's
	// update may not follow.
	wb := &pgx.Batch{}
	if len(merchants) > 1 {
		queueLockAccounts(wb, org, merchants)
	}
	if len(rec.ids) >= l.copyMinRows {
		if len(merchants) > 1 {
			if err := tx.SendBatch(ctx, wb).Close(); err != nil {
				return nil, fmt.Errorf("ledger: lock merchant accounts: %w", dbError(err))
			}
			wb = &pgx.Batch{}
		}
		if err := copyRows(ctx, tx.Conn().PgConn(), org, rec); err != nil {
			return nil, fmt.Errorf("ledger: record terminal transactions: %w", dbError(err))
		}
		if err := copyItems(ctx, tx.Conn().PgConn(), org, &rec.items); err != nil {
			return nil, fmt.Errorf("ledger: record terminal transaction items: %w", dbError(err))
		}
		late.queue(wb, org)
		queueAlerts(wb, org, alerts)
		filled.queue(wb, org)
		wb.Queue("COMMIT")
		if err := tx.SendBatch(ctx, wb).Close(); err != nil {
			return nil, fmt.Errorf("ledger: record terminal transactions: %w", dbError(err))
		}
		return out, nil
	}
	args := append([]any{org}, rec.args()...)
	if rec.raws == nil {
		wb.Queue(`INSERT INTO terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq,
			amount, balance_before, balance_after, merchant_id, at, signature, status, hold_reason, chained,
			card_account, merchant_account, nonrefundable_account, nonrefundable_contra, nonrefundable_spent)
		SELECT $1, id, term, tseq, card, cseq, amount, before, after, merchant, at, sig, status, reason, chained,
			nullif(cacct, 0), nullif(macct, 0), nullif(nacct, 0), nullif(ncontra, 0), CASE WHEN nacct <> 0 THEN nspent END
		FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
			$10::text[], $11::timestamptz[], $12::bytea[], $13::text[], $14::text[], $15::bool[], $16::bigint[], $17::bigint[],
			$18::bigint[], $19::bigint[], $20::bigint[])
			AS u(id, term, tseq, card, cseq, amount, before, after, merchant, at, sig, status, reason, chained, cacct, macct,
				nacct, ncontra, nspent)`, args...)
	} else {
		// Transactions with items (version 2) keep their bytes in raw:
		// their fields alone do not give them back (see scanSigned).
		wb.Queue(`INSERT INTO terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq,
			amount, balance_before, balance_after, merchant_id, at, signature, status, hold_reason, chained,
			card_account, merchant_account, nonrefundable_account, nonrefundable_contra, nonrefundable_spent, raw)
		SELECT $1, id, term, tseq, card, cseq, amount, before, after, merchant, at, sig, status, reason, chained,
			nullif(cacct, 0), nullif(macct, 0), nullif(nacct, 0), nullif(ncontra, 0), CASE WHEN nacct <> 0 THEN nspent END, raw
		FROM unnest($2::uuid[], $3::text[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[],
			$10::text[], $11::timestamptz[], $12::bytea[], $13::text[], $14::text[], $15::bool[], $16::bigint[], $17::bigint[],
			$18::bigint[], $19::bigint[], $20::bigint[], $21::bytea[])
			AS u(id, term, tseq, card, cseq, amount, before, after, merchant, at, sig, status, reason, chained, cacct, macct,
				nacct, ncontra, nspent, raw)`,
			append(args, rec.raws)...)
	}
	rec.items.queue(wb, org)
	late.queue(wb, org)
	queueAlerts(wb, org, alerts)
	filled.queue(wb, org)
	wb.Queue("COMMIT")
	if err := tx.SendBatch(ctx, wb).Close(); err != nil {
		return nil, fmt.Errorf("ledger: record terminal transactions: %w", dbError(err))
	}
	return out, nil
}

// activeCardAlerts reads the statuses of the cards of the blocking alerts,
// which the transaction has locked, and returns the notices and the
// blocking alerts of the cards that are active, logging each: a card
// already blocked or refunded gets no second blocking alert. With
// wantLoss it also returns the organizer's RefundLosses account, for the
// debits of cards whose refund was paid out (cardState.paidOut).
func (l *Ledger) activeCardAlerts(ctx context.Context, tx batchSender, org int64, alerts []alert, states map[string]*cardState, wantLoss bool) ([]alert, int64, error) {
	cards := make([][]byte, 0, len(alerts))
	for _, a := range alerts {
		if !a.notice {
			cards = append(cards, a.card)
		}
	}
	b := &pgx.Batch{}
	queueReadCardStatuses(b, org, cards, states)
	var lossAccount int64
	if wantLoss {
		// Organizers made before migration 023 got the account there.
		b.Queue(`WITH i AS (INSERT INTO accounts (org_id, kind, ref, side, floor) VALUES ($1, $2, '', $3, NULL)
				ON CONFLICT (org_id, kind, ref) DO NOTHING RETURNING account_id)
			SELECT account_id FROM i UNION ALL
			SELECT account_id FROM accounts WHERE org_id = $1 AND kind = $2 AND ref = '' LIMIT 1`,
			org, string(RefundLosses), accountSpecs[RefundLosses].side).QueryRow(func(row pgx.Row) error {
			return row.Scan(&lossAccount)
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("ledger: read card statuses: %w", err)
	}
	kept := alerts[:0]
	for _, a := range alerts {
		if a.notice {
			kept = append(kept, a)
			continue
		}
		if states[string(a.card)].status != "active" {
			continue
		}
		kept = append(kept, a)
		l.log.Warn("card blocked", "org", org, "card", terminaltx.CardHex(a.card), "reason", a.kind, "txn", a.txn.String(), "detail", a.detail)
	}
	return kept, lossAccount, nil
}

// lateDebit is a debit decided unfunded: posted against refund losses
// instead if its card's refund was paid out. k is its place in apply's
// results, row in the terminal rows.
type lateDebit struct {
	k, row          int
	tx              *terminaltx.Signed
	merchantAccount int64
}

// queue queues writing the entries, if any (their accounts are locked).
func (r *entryRows) queue(b *pgx.Batch, org int64) {
	if len(r.jIDs) == 0 {
		return
	}
	sql, args := r.statement(org, 2)
	b.Queue(sql, append([]any{org}, args...)...)
}

// queueReadChain queues reading the card chain's rows next to each card
// sequence seqs[k] of card cards[k] (the sequences before, at and after
// it): other card writes (card_events) and chained terminal transactions
// (see card_chain). The lookups are nested loops over the keys (LATERAL
// ... OFFSET 0): a batch touches few rows of large tables.
func queueReadChain(b *pgx.Batch, org int64, cards [][]byte, seqs []int64, events map[seqKey]cardEvent) {
	b.Queue(`SELECT e.card_id, e.card_seq, e.txn_id, e.balance_before, e.balance_after, e.claimed
		FROM unnest($2::bytea[], $3::bigint[]) q(card, seq)
		CROSS JOIN LATERAL (SELECT card_id, card_seq, txn_id, balance_before, balance_after, true AS claimed FROM card_events e
			WHERE e.org_id = $1 AND e.card_id = q.card AND e.card_seq BETWEEN q.seq - 1 AND q.seq + 1
			UNION ALL
			SELECT card_id, card_seq, txn_id, balance_before, balance_after, false FROM terminal_txs t
			WHERE t.org_id = $1 AND t.card_id = q.card AND t.card_seq BETWEEN q.seq - 1 AND q.seq + 1 AND t.chained
			OFFSET 0) e`, org, cards, seqs).
		Query(func(rows pgx.Rows) error {
			var (
				card          []byte
				seq           int64
				id            [16]byte
				before, after int64
				claimed       bool
			)
			_, err := pgx.ForEachRow(rows, []any{&card, &seq, &id, &before, &after, &claimed}, func() error {
				events[seqKey{string(card), seq}] = cardEvent{txn: id, before: before, after: after, claimed: claimed}
				return nil
			})
			return err
		})
}

// queueReadRecorded queues reading which of the ids of txs[todo...] are
// recorded, with their content hashes, and which of their terminal
// sequence numbers are used, by which ids.
func queueReadRecorded(b *pgx.Batch, org int64, txs []*terminaltx.Signed, todo []int,
	existing map[txid.ID][32]byte, usedSeq map[termSeq]txid.ID) {
	ids := make([]pgtype.UUID, len(todo))
	terms := make([]string, len(todo))
	seqs := make([]int64, len(todo))
	for k, i := range todo {
		ids[k] = pgtype.UUID{Bytes: txs[i].ID, Valid: true}
		terms[k], seqs[k] = txs[i].Terminal, txs[i].TerminalSeq
	}
	b.Queue(`SELECT t.txn_id, t.raw, t.signature, t.terminal_id, t.terminal_seq, t.card_id, t.card_seq, t.amount,
			t.balance_before, t.balance_after, t.merchant_id, t.at
		FROM unnest($2::uuid[]) q(id)
		CROSS JOIN LATERAL (SELECT * FROM terminal_txs t WHERE t.org_id = $1 AND t.txn_id = q.id OFFSET 0) t`, org, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				s, err := scanSigned(rows, org)
				if err != nil {
					return err
				}
				existing[s.ID] = s.ContentHash()
			}
			return rows.Err()
		})
	b.Queue(`SELECT t.txn_id, q.tid, q.tseq FROM unnest($2::text[], $3::bigint[]) q(tid, tseq)
		CROSS JOIN LATERAL (SELECT txn_id FROM terminal_txs t
			WHERE t.org_id = $1 AND t.terminal_id = q.tid AND t.terminal_seq = q.tseq OFFSET 0) t`, org, terms, seqs).
		Query(func(rows pgx.Rows) error {
			var (
				id   [16]byte
				term string
				seq  int64
			)
			_, err := pgx.ForEachRow(rows, []any{&id, &term, &seq}, func() error {
				usedSeq[termSeq{term, seq}] = id
				return nil
			})
			return err
		})
}

// scanSigned reads a recorded terminal transaction of organizer org (the
// columns raw, signature, terminal_id, terminal_seq, card_id, card_seq,
// amount, balance_before, balance_after, merchant_id, at, after txn_id) and
// returns it as it was signed: rows store the signature and the fields,
// whose encoding is canonical (migration 014), or, if older, the bytes.
func scanSigned(rows pgx.Rows, org int64) (*terminaltx.Signed, error) {
	var (
		raw, sig []byte
		tx       = terminaltx.Tx{Kind: terminaltx.KindDebit, Organizer: org}
		cardSeq  int64
	)
	if err := rows.Scan(&tx.ID, &raw, &sig, &tx.Terminal, &tx.TerminalSeq, &tx.Card, &cardSeq, &tx.Amount,
		&tx.BalanceBefore, &tx.BalanceAfter, &tx.Merchant, &tx.Time); err != nil {
		return nil, err
	}
	if raw == nil {
		tx.CardSeq = uint32(cardSeq)
		p, err := tx.MarshalPayload()
		if err != nil {
			return nil, fmt.Errorf("ledger: recorded transaction %s: %w", tx.ID, err)
		}
		raw = append(p, sig...)
	}
	s, err := terminaltx.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("ledger: recorded transaction %s: %w", tx.ID, err)
	}
	return s, nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// batchSender sends a batch of statements in one round trip (a pooled
// connection).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	Conn() *pgx.Conn
}

// inPipelinedTx runs fn on a pooled connection with no transaction open;
// fn's batches must open the transaction with BEGIN and end it with COMMIT,
// saving the round trips of separate BEGIN and COMMIT. On any error the
// transaction is rolled back (a connection that cannot roll back is closed,
// never returned to the pool inside a transaction), and a transaction that
// lost a race is retried as inTx does.
func (l *Ledger) inPipelinedTx(ctx context.Context, fn func(batchSender) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = l.pipelinedOnce(ctx, fn)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		l.log.Debug("ledger: retrying transaction", "attempt", attempt, "err", err)
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
	return err
}

func (l *Ledger) pipelinedOnce(ctx context.Context, fn func(batchSender) error) error {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err = fn(conn); err == nil && conn.Conn().PgConn().TxStatus() == 'I' {
		return nil
	}
	if err == nil {
		err = errors.New("ledger: pipelined transaction left open")
	}
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn.Conn().IsClosed() {
		return err
	}
	if _, rerr := conn.Exec(rctx, "ROLLBACK"); rerr != nil || conn.Conn().PgConn().TxStatus() != 'I' {
		_ = conn.Conn().Close(rctx)
	}
	return err
}

// terminalRows gathers terminal_txs rows for one multi-row insert.
type terminalRows struct {
	ids                                    []pgtype.UUID
	terms, merchants, statuses, reasons    []string
	tseqs, cseqs, amounts, befores, afters []int64
	ats                                    []time.Time
	cards, sigs                            [][]byte
	chained                                []bool
	cardAccounts, merchantAccounts         []int64 // 0 when not posted
	// The non-refundable credit a posted debit spent (migration 029): the
	// card's account, the one it goes to, the amount; account 0 when the
	// card has none.
	nrAccounts, nrContras, nrSpent []int64
	// raws are the encodings of transactions with items, nil for the
	// others (whose signature is in sigs); raws itself stays nil until a
	// transaction with items is added, so that uploads without any write
	// what they wrote before items existed.
	raws  [][]byte
	items itemRows
}

// itemRows gathers the terminal_tx_items rows of the transactions with items.
type itemRows struct {
	ids                 []pgtype.UUID
	lines               []int16
	merchants, products []string
	ats                 []time.Time
	quantities          []int32
	prices              []int64
	vats, versions      []int32
}

func (r *itemRows) add(s *terminaltx.Signed) {
	for i, it := range s.Items {
		r.ids = append(r.ids, pgtype.UUID{Bytes: s.ID, Valid: true})
		r.lines = append(r.lines, int16(i))
		r.merchants = append(r.merchants, s.Merchant)
		r.ats = append(r.ats, s.Time)
		r.products = append(r.products, it.Product)
		r.quantities = append(r.quantities, it.Quantity)
		r.prices = append(r.prices, it.UnitPrice)
		r.vats = append(r.vats, it.VATRateBP)
		r.versions = append(r.versions, it.MenuVersion)
	}
}

// queue queues writing the rows, if any.
func (r *itemRows) queue(b *pgx.Batch, org int64) {
	if len(r.ids) == 0 {
		return
	}
	b.Queue(`INSERT INTO terminal_tx_items (org_id, txn_id, line, merchant_id, at, product_id, quantity, unit_price,
			vat_rate_bp, menu_version)
		SELECT $1, * FROM unnest($2::uuid[], $3::smallint[], $4::text[], $5::timestamptz[], $6::text[], $7::int[],
			$8::bigint[], $9::int[], $10::int[])`,
		org, r.ids, r.lines, r.merchants, r.ats, r.products, r.quantities, r.prices, r.vats, r.versions)
}

// nrSpend is the non-refundable credit a debit spends: from the card's
// card_nonrefundable account to a nonrefundable_credit account.
type nrSpend struct{ account, contra, amount int64 }

// newTerminalRows returns terminalRows with room for n rows.
func newTerminalRows(n int) *terminalRows {
	ints := func() []int64 { return make([]int64, 0, n) }
	strs := func() []string { return make([]string, 0, n) }
	return &terminalRows{
		ids:   make([]pgtype.UUID, 0, n),
		terms: strs(), merchants: strs(), statuses: strs(), reasons: strs(),
		tseqs: ints(), cseqs: ints(), amounts: ints(), befores: ints(), afters: ints(),
		ats:   make([]time.Time, 0, n),
		cards: make([][]byte, 0, n), sigs: make([][]byte, 0, n),
		chained:      make([]bool, 0, n),
		cardAccounts: ints(), merchantAccounts: ints(),
		nrAccounts: ints(), nrContras: ints(), nrSpent: ints(),
	}
}

// add adds a transaction; a posted one names the card account it debits
// and the merchant account it credits, and the non-refundable credit it
// spends if any.
func (r *terminalRows) add(s *terminaltx.Signed, status, reason string, chained bool, cardAccount, merchantAccount int64, nr nrSpend) {
	r.ids = append(r.ids, pgtype.UUID{Bytes: s.ID, Valid: true})
	r.terms = append(r.terms, s.Terminal)
	r.merchants = append(r.merchants, s.Merchant)
	r.statuses = append(r.statuses, status)
	r.reasons = append(r.reasons, reason)
	r.tseqs = append(r.tseqs, s.TerminalSeq)
	r.cseqs = append(r.cseqs, int64(s.CardSeq))
	r.amounts = append(r.amounts, s.Amount)
	r.befores = append(r.befores, s.BalanceBefore)
	r.afters = append(r.afters, s.BalanceAfter)
	r.ats = append(r.ats, s.Time)
	r.cards = append(r.cards, s.Card)
	switch {
	case len(s.Items) > 0:
		if r.raws == nil {
			r.raws = make([][]byte, len(r.sigs), cap(r.sigs))
		}
		r.raws = append(r.raws, s.Bytes())
		r.sigs = append(r.sigs, nil)
		r.items.add(s)
	case r.raws != nil:
		r.raws = append(r.raws, nil)
		r.sigs = append(r.sigs, s.Signature)
	default:
		r.sigs = append(r.sigs, s.Signature)
	}
	r.chained = append(r.chained, chained)
	r.cardAccounts = append(r.cardAccounts, cardAccount)
	r.merchantAccounts = append(r.merchantAccounts, merchantAccount)
	r.nrAccounts = append(r.nrAccounts, nr.account)
	r.nrContras = append(r.nrContras, nr.contra)
	r.nrSpent = append(r.nrSpent, nr.amount)
}

func (r *terminalRows) args() []any {
	return []any{r.ids, r.terms, r.tseqs, r.cards, r.cseqs, r.amounts, r.befores, r.afters, r.merchants, r.ats,
		r.sigs, r.statuses, r.reasons, r.chained, r.cardAccounts, r.merchantAccounts, r.nrAccounts, r.nrContras, r.nrSpent}
}

// alert is a clone or tamper alert; raising one blocks the card unless it
// is a notice.
type alert struct {
	id     txid.ID
	card   []byte
	kind   string
	txn    txid.ID
	other  *txid.ID
	detail string
	notice bool // for HQ; does not block the card
}

// queueAlerts queues recording alerts and blocking the cards of those that
// are not notices.
func queueAlerts(b *pgx.Batch, org int64, alerts []alert) {
	for _, a := range alerts {
		var other *pgtype.UUID
		if a.other != nil {
			other = &pgtype.UUID{Bytes: *a.other, Valid: true}
		}
		b.Queue(`INSERT INTO card_alerts (org_id, alert_id, card_id, kind, txn_id, other_txn_id, detail, blocking)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, org, pgtype.UUID{Bytes: a.id, Valid: true}, a.card, a.kind,
			pgtype.UUID{Bytes: a.txn, Valid: true}, other, a.detail, !a.notice)
		if !a.notice {
			b.Queue(`UPDATE cards SET status = 'blocked' WHERE org_id = $1 AND card_id = $2`, org, a.card)
		}
	}
}

// gapFills are the chain rows whose sequence gap a batch closed: the card
// and the id of the row after the late arrival.
type gapFills struct {
	cards [][]byte
	txns  []pgtype.UUID
}

func (g *gapFills) add(card []byte, next txid.ID) {
	g.cards = append(g.cards, card)
	g.txns = append(g.txns, pgtype.UUID{Bytes: next, Valid: true})
}

// queue queues resolving the open sequence_gap alerts of those rows, if any.
func (g *gapFills) queue(b *pgx.Batch, org int64) {
	if len(g.cards) == 0 {
		return
	}
	b.Queue(`UPDATE card_alerts a SET resolved_at = now() FROM unnest($2::bytea[], $3::uuid[]) q(card, txn)
		WHERE a.org_id = $1 AND a.card_id = q.card AND a.txn_id = q.txn AND a.kind = 'sequence_gap' AND a.resolved_at IS NULL`,
		org, g.cards, g.txns)
}

// insertAlerts records alerts and blocks their cards.
func insertAlerts(ctx context.Context, tx pgx.Tx, org int64, alerts []alert) error {
	b := &pgx.Batch{}
	queueAlerts(b, org, alerts)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger: alerts: %w", err)
	}
	return nil
}
