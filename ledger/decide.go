package ledger

import (
	"fmt"

	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// The ledger's decision on one uploaded terminal transaction, apart from
// the locking and writing around it: Ledger.apply locks the batch's cards,
// reads what the database holds, gathers the facts of each transaction in
// turn, asks decide, and writes what it answers. decide reads no database,
// no clock and no randomness (the alerts it returns have no id yet), so
// every outcome is a table test (decide_test.go) and its invariants are
// fuzzed (FuzzDecide).

// facts is what apply knows about one transaction when it decides it: what
// it read with the card's lock and, when careful, what was recorded before,
// updated by the transactions of the batch decided before this one.
type facts struct {
	tx       *terminaltx.Signed
	terminal terminalInfo // the enrolled terminal that signed tx

	// recorded: a transaction with tx's id is recorded, with content hash
	// recordedHash.
	recorded     bool
	recordedHash [32]byte
	// seqTaken: the terminal's sequence number is used, by seqOwner.
	seqTaken bool
	seqOwner txid.ID

	card cardFacts
	// The rows of the card's chain (card writes and chained terminal
	// transactions) at the card sequences before, at and after tx's. A row
	// that stands in for the card's chain tip has a zero txn: see apply.
	prev, at, next chainRow
}

// cardFacts is the locked card of a transaction.
type cardFacts struct {
	known   bool  // the card is registered (its account was locked)
	balance int64 // the credit the ledger holds for it, after the batch's debits so far
	blocked bool  // a transaction earlier in the batch raised a blocking alert for it
}

// chainRow is one row of a card's chain, if ok.
type chainRow struct {
	cardEvent
	ok bool
}

// maxAlerts is the most alerts one decision raises: one that blocks the
// card (a transaction blocks its card at most once) and two notices (a
// sequence gap, and a hold because of the terminal).
const maxAlerts = 3

// verdict is decide's answer for one transaction.
//
// Recorded (Accepted or Held), the transaction uses its terminal sequence
// number, and an Accepted one debits its amount from the card's balance
// and credits its terminal's merchant. Duplicate and Rejected change
// nothing: no alert, no chain, no debit.
type verdict struct {
	status Status // Accepted, Held, Duplicate or Rejected
	reason string // for Held, and for Accepted with a chain alert
	err    error  // for Rejected

	// chained: the transaction takes its place in the card's chain at its
	// card sequence (every recorded one but a clone and one of an unknown
	// card).
	chained bool
	// closesGap: the chain row after the transaction (facts.next, a real
	// row) had nothing before it; its open sequence_gap alert is resolved.
	closesGap bool
	// blocks: alerts holds one alert that blocks the card; the card counts
	// as blocked for the rest of the batch.
	blocks bool
	// alerts to raise, in order, without their ids.
	alerts  [maxAlerts]alert
	nAlerts int
}

// posts reports whether the transaction debits the card and credits the
// merchant.
func (v *verdict) posts() bool { return v.status == Accepted }

// result returns the transaction's Result (without its ID).
func (v *verdict) result() Result {
	return Result{Status: v.status, Reason: v.reason, Err: v.err}
}

// dbStatus returns the terminal_txs status of a recorded transaction.
func (v *verdict) dbStatus() string {
	if v.status == Accepted {
		return "posted"
	}
	return "held"
}

// raise adds an alert that blocks the card, unless the card is blocked
// already (by this transaction or one before it in the batch).
func (v *verdict) raise(f *facts, kind string, other *txid.ID, detail string) {
	if f.card.blocked || v.blocks {
		return
	}
	v.blocks = true
	v.add(alert{card: f.tx.Card, kind: kind, txn: f.tx.ID, other: other, detail: detail})
}

// notify adds an alert for HQ that does not block the card.
func (v *verdict) notify(f *facts, kind string, detail string) {
	v.add(alert{card: f.tx.Card, kind: kind, txn: f.tx.ID, detail: detail, notice: true})
}

// conflict raises the alert of a conflict between the transaction and the
// chain row with: a blocking one of kind when the row is terminal-signed
// too, and a ReasonWriteConflict notice when it is a card write a store or
// station reported, a claim that must never block a card (issue 17, M4).
func (v *verdict) conflict(f *facts, with chainRow, kind string, other *txid.ID, detail string) {
	if with.claimed {
		v.add(alert{card: f.tx.Card, kind: ReasonWriteConflict, txn: f.tx.ID, other: other, notice: true,
			detail: detail + " (a reported card write: " + kind + ")"})
		return
	}
	v.raise(f, kind, other, detail)
}

func (v *verdict) add(a alert) {
	v.alerts[v.nAlerts] = a
	v.nAlerts++
}

// decide classifies one terminal transaction of an upload, whose
// signature has been verified against its enrolled terminal:
//
//   - an id already recorded is a Duplicate with the same content and
//     Rejected (ErrConflict) with other content;
//   - a terminal sequence number used by another id is Rejected
//     (ErrTerminalSeqReused);
//   - otherwise it is recorded, held when the card is unknown
//     (ReasonUnknownCard) or its card sequence is taken (ReasonClone,
//     blocking), posted with ReasonChain (blocking) when its balances do
//     not join the chain rows next to it (when that row is a card write a
//     store or station reported, a claim, the alert is a
//     ReasonWriteConflict notice instead, which blocks nothing), with a ReasonSequenceGap notice
//     when nothing is recorded at the sequence before it, held with a
//     notice when its terminal is at fault (ReasonTerminalRevoked,
//     ReasonWrongMerchant) and held when the card's credit does not cover
//     it (ReasonUnfunded, blocking); else posted.
//
// A card is blocked at most once per batch: the first blocking alert
// stands, later ones are not raised (but their reasons are).
func decide(f *facts) (v verdict) {
	s := f.tx
	if f.recorded {
		if s.ContentHash() == f.recordedHash {
			return verdict{status: Duplicate}
		}
		return verdict{status: Rejected, err: ErrConflict}
	}
	if f.seqTaken && f.seqOwner != s.ID {
		return verdict{status: Rejected, err: ErrTerminalSeqReused}
	}
	v.status = Accepted
	held := terminalHold(f.terminal, s)
	switch {
	case !f.card.known:
		v.status, v.reason = Held, ReasonUnknownCard
		if held != "" {
			v.reason = held
			v.notify(f, held, heldDetail(f, held))
		}
	case f.at.ok:
		v.status, v.reason = Held, ReasonClone
		other := f.at.txn
		v.conflict(f, f.at, ReasonClone, &other, fmt.Sprintf("card sequence %d used by two transactions", s.CardSeq))
	default:
		if p := f.prev; p.ok && p.after != s.BalanceBefore {
			v.reason = ReasonChain
			other := p.txn // escapes only here
			v.conflict(f, p, ReasonChain, &other, fmt.Sprintf("balance before %d at sequence %d, but %d after sequence %d", s.BalanceBefore, s.CardSeq, p.after, s.CardSeq-1))
		}
		if n := f.next; n.ok && n.before != s.BalanceAfter {
			v.reason = ReasonChain
			other := n.txn
			v.conflict(f, n, ReasonChain, &other, fmt.Sprintf("balance after %d at sequence %d, but %d before sequence %d", s.BalanceAfter, s.CardSeq, n.before, s.CardSeq+1))
		}
		// Every chain row next to the transaction is known (see apply):
		// nothing at the sequence before it is a gap.
		if !f.prev.ok && s.CardSeq > 1 {
			v.notify(f, ReasonSequenceGap, fmt.Sprintf("nothing recorded at card sequence %d before sequence %d", s.CardSeq-1, s.CardSeq))
		}
		if held != "" {
			v.status, v.reason = Held, held
			v.notify(f, held, heldDetail(f, held))
		} else if f.card.balance < s.Amount {
			v.status, v.reason = Held, ReasonUnfunded
			v.raise(f, ReasonUnfunded, nil, fmt.Sprintf("card spent %d, ledger holds %d", s.Amount, f.card.balance))
		}
		v.chained = true
		// A late arrival below the tip may close a gap that the row after
		// it raised (a stand-in for the tip has no id).
		v.closesGap = f.next.ok && f.next.txn != (txid.ID{})
	}
	return v
}

// heldDetail is the detail of the notice of a debit held because of its
// terminal (see terminalHold).
func heldDetail(f *facts, held string) string {
	s := f.tx
	if held == ReasonWrongMerchant {
		return fmt.Sprintf("terminal %s of merchant %s signed a debit of %d for merchant %s", s.Terminal, f.terminal.merchant, s.Amount, s.Merchant)
	}
	return fmt.Sprintf("terminal %s was revoked; debit of %d for merchant %s", s.Terminal, s.Amount, s.Merchant)
}
