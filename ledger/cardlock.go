package ledger

import (
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Uploads lock their cards' accounts with one index scan of accounts by
// account id (= ANY), sorted and locked by one LockRows node, rather than
// one pair of LATERAL lookups (cards, then accounts) per card: per card
// that was about 10 us of the server's time, most of it the rescans of the
// two subqueries, against about 3 us for the scan.
//
// The account of a card never changes (RegisterCards makes the pair, and
// neither cards nor accounts are ever deleted), so the ledger remembers it
// (cardAccounts) and looks cards up only the first time it meets them. Each
// account row comes back with its kind and ref, which for a card account
// is the card id in hex: a remembered id that no longer names the card's
// account (a database restored under a running ledger) is caught, forgotten,
// and the upload applied again with fresh lookups.

// errStaleCardAccount reports a remembered card account that no longer
// matches the database; the upload forgets it and tries again.
var errStaleCardAccount = errors.New("ledger: remembered card account does not match the database")

// maxRememberedCards bounds cardAccounts; past it the map starts afresh.
// A festival's cards fit many times over.
const maxRememberedCards = 1 << 20

type cardKey struct {
	org  int64
	card string
}

// cardAccounts remembers the account id of each card this ledger met,
// and, so that an upload of cards with voucher credit reads that credit in
// its first round trip, the non-refundable account of each card met that
// has one and the nonrefundable_credit account of each merchant (and of
// the organizer, ref ""), which never change either.
type cardAccounts struct {
	mu     sync.RWMutex
	m      map[cardKey]int64
	nr     map[cardKey]int64
	contra map[cardKey]int64 // card: the merchant id
}

// nonRefundable returns the remembered non-refundable accounts of cards
// (those known to have one) and nonrefundable_credit accounts of merchants
// (with ""), and whether every merchant's was remembered.
func (c *cardAccounts) nonRefundable(org int64, cards [][]byte, merchants []string) (nr map[int64]string, contras map[string]int64, all bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	nr = map[int64]string{}
	for _, card := range cards {
		if id, ok := c.nr[cardKey{org, string(card)}]; ok {
			nr[id] = string(card)
		}
	}
	if len(nr) == 0 {
		return nil, nil, false
	}
	contras, all = map[string]int64{}, true
	for _, m := range append(merchants, "") {
		if id, ok := c.contra[cardKey{org, m}]; ok {
			contras[m] = id
		} else {
			all = false
		}
	}
	return nr, contras, all
}

// rememberNonRefundable remembers the non-refundable accounts of states
// and the nonrefundable_credit accounts in contras.
func (c *cardAccounts) rememberNonRefundable(org int64, states map[string]*cardState, contras map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nr == nil || len(c.nr)+len(states) > maxRememberedCards {
		c.nr = map[cardKey]int64{}
	}
	if c.contra == nil || len(c.contra)+len(contras) > maxRememberedCards {
		c.contra = map[cardKey]int64{}
	}
	for card, st := range states {
		if st.nrAccount != 0 {
			c.nr[cardKey{org, card}] = st.nrAccount
		}
	}
	for m, id := range contras {
		c.contra[cardKey{org, m}] = id
	}
}

func (c *cardAccounts) forgetNonRefundable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nr, c.contra = nil, nil
}

// nonRefundableRead is the non-refundable credit an upload read in its
// first round trip, for the cards and merchants remembered
// (queueReadRememberedNonRefundable).
type nonRefundableRead struct {
	nr       map[int64]string // remembered account → card
	contras  map[string]int64 // remembered merchant → account
	all      bool             // every merchant's was remembered
	balances map[int64]int64  // read: account → balance
	stale    bool             // an account read is not what was remembered
}

// queueReadRememberedNonRefundable queues, after the cards' lock, reading
// the balances of the non-refundable accounts remembered for cards and
// checking the remembered nonrefundable_credit accounts of merchants. It
// returns nil, queueing nothing, when no card is remembered to have one:
// an upload without voucher credit does no more.
func (l *Ledger) queueReadRememberedNonRefundable(b *pgx.Batch, org int64, cards [][]byte, merchants []string) *nonRefundableRead {
	nr, contras, all := l.cardAccts.nonRefundable(org, cards, merchants)
	if nr == nil {
		return nil
	}
	rd := &nonRefundableRead{nr: nr, contras: contras, all: all, balances: map[int64]int64{}}
	ids := make([]int64, 0, len(nr)+len(contras))
	for id := range nr {
		ids = append(ids, id)
	}
	byID := map[int64]string{}
	for m, id := range contras {
		ids = append(ids, id)
		byID[id] = m
	}
	b.Queue(`SELECT account_id, kind, ref, side * balance FROM accounts WHERE org_id = $1 AND account_id = ANY($2)`, org, ids).
		Query(func(rows pgx.Rows) error {
			var id, bal int64
			var kind, ref string
			_, err := pgx.ForEachRow(rows, []any{&id, &kind, &ref, &bal}, func() error {
				if m, ok := byID[id]; ok {
					if kind != string(NonRefundableCredit) || ref != m {
						rd.stale = true
					}
					return nil
				}
				if card, ok := nr[id]; !ok || kind != string(CardNonRefundable) || ref != terminaltx.CardHex([]byte(card)) {
					rd.stale = true
					return nil
				}
				rd.balances[id] = bal
				return nil
			})
			return err
		})
	return rd
}

// lookup splits cards into the account ids it remembers (in ids, -1 where
// not) and the cards it does not remember.
func (c *cardAccounts) lookup(org int64, cards [][]byte) (ids []int64, known []int64, unknown [][]byte) {
	ids = make([]int64, len(cards))
	known = make([]int64, 0, len(cards))
	c.mu.RLock()
	for i, card := range cards {
		id, ok := c.m[cardKey{org, string(card)}]
		if ok {
			ids[i] = id
			known = append(known, id)
		} else {
			ids[i] = -1
			unknown = append(unknown, card)
		}
	}
	c.mu.RUnlock()
	return ids, known, unknown
}

// remember adds the accounts of cards met for the first time.
func (c *cardAccounts) remember(org int64, met []*cardState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(met) > maxRememberedCards {
		c.m = make(map[cardKey]int64, len(met))
	}
	for _, st := range met {
		c.m[cardKey{org, string(st.card)}] = st.account
	}
}

func (c *cardAccounts) forget(org int64, cards [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, card := range cards {
		delete(c.m, cardKey{org, string(card)})
	}
}

// cardAccountLock is the locking read of one upload's card accounts; see
// queueLockCardAccounts and finish.
type cardAccountLock struct {
	org    int64
	cards  [][]byte // the batch's cards, each once
	ids    []int64  // remembered account id of cards[i], or -1
	byRef  map[string]int
	states map[string]*cardState
	stale  bool
	// nonRefundable: a card has a non-refundable account, whose balance
	// queueReadNonRefundable reads.
	nonRefundable bool
}

// queueLockCardAccounts queues locking the accounts of cards (each once),
// in account-id order, and reading their balances and chain tips into
// states. The cards' statuses are not read (see activeCardAlerts).
func (l *Ledger) queueLockCardAccounts(b *pgx.Batch, org int64, cards [][]byte, states map[string]*cardState) *cardAccountLock {
	lk := &cardAccountLock{org: org, cards: cards, states: states, byRef: make(map[string]int, len(cards))}
	var known []int64
	var unknown [][]byte
	lk.ids, known, unknown = l.cardAccts.lookup(org, cards)
	for i, c := range cards {
		lk.byRef[terminaltx.CardHex(c)] = i
	}
	if unknown == nil {
		unknown = [][]byte{}
	}
	// The cards not remembered are looked up one index probe each (LATERAL
	// ... OFFSET 0), inside the array the scan of accounts is keyed by. The
	// transaction's enable_seqscan = off keeps that scan an index scan in a
	// generic plan made while the tables were small.
	b.Queue(`SELECT a.account_id, a.kind, a.ref, a.side * a.balance, coalesce(a.chain_seq, -1), coalesce(a.chain_after, 0),
			coalesce(a.nonrefundable_account, 0)
		FROM accounts a
		WHERE a.org_id = $1 AND a.account_id = ANY($2::bigint[] || ARRAY(
			SELECT c.account_id FROM unnest($3::bytea[]) q(id)
			CROSS JOIN LATERAL (SELECT account_id FROM cards WHERE org_id = $1 AND card_id = q.id OFFSET 0) c))
		ORDER BY a.account_id FOR UPDATE`, org, known, unknown).Query(func(rows pgx.Rows) error {
		var (
			id, bal, seq, after, nr int64
			kind, ref               string
		)
		_, err := pgx.ForEachRow(rows, []any{&id, &kind, &ref, &bal, &seq, &after, &nr}, func() error {
			i, ok := lk.byRef[ref]
			if !ok || kind != string(Card) || (lk.ids[i] >= 0 && lk.ids[i] != id) {
				lk.stale = true
				return nil
			}
			states[string(cards[i])] = &cardState{card: cards[i], account: id, balance: bal, chainSeq: seq, chainAfter: after, nrAccount: nr}
			if nr != 0 {
				lk.nonRefundable = true
			}
			return nil
		})
		return err
	})
	return lk
}

// finish checks the locked accounts against what was remembered and
// remembers the cards met for the first time. It returns
// errStaleCardAccount, having forgotten the batch's cards, when a
// remembered account did not come back as its card's.
func (lk *cardAccountLock) finish(l *Ledger) error {
	for i, c := range lk.cards {
		if lk.ids[i] >= 0 && lk.states[string(c)] == nil {
			lk.stale = true
		}
	}
	if lk.stale {
		l.cardAccts.forget(lk.org, lk.cards)
		return errStaleCardAccount
	}
	// The write lock only when there is something new: nearly every
	// upload's cards are all remembered.
	var met []*cardState
	for i, c := range lk.cards {
		if st := lk.states[string(c)]; st != nil && lk.ids[i] < 0 {
			met = append(met, st)
		}
	}
	if len(met) > 0 {
		l.cardAccts.remember(lk.org, met)
	}
	return nil
}

// queueReadCardStatuses queues reading the statuses of cards into states
// (cards that are locked, so the statuses are current), and whether a
// refunded card's refund was paid out or a replaced card's hold moved to
// its new card: its credit left the ledger.
func queueReadCardStatuses(b *pgx.Batch, org int64, cards [][]byte, states map[string]*cardState) {
	b.Queue(`SELECT c.card_id, c.status, (c.status = 'refunded' AND EXISTS (SELECT 1 FROM refunds r
			WHERE r.org_id = $1 AND r.card_id = c.card_id AND r.status = 'exported'))
			OR (c.status = 'replaced' AND EXISTS (SELECT 1 FROM card_replacements p
			WHERE p.org_id = $1 AND p.old_card = c.card_id AND p.settled_at IS NOT NULL))
		FROM unnest($2::bytea[]) q(id)
		CROSS JOIN LATERAL (SELECT card_id, status FROM cards WHERE org_id = $1 AND card_id = q.id OFFSET 0) c`,
		org, cards).Query(func(rows pgx.Rows) error {
		var (
			card    []byte
			status  string
			paidOut bool
		)
		_, err := pgx.ForEachRow(rows, []any{&card, &status, &paidOut}, func() error {
			if st := states[string(card)]; st != nil {
				st.status, st.paidOut = status, paidOut
			}
			return nil
		})
		return err
	})
}

// queueReadNonRefundable queues reading the balances of the non-refundable
// accounts of the locked cards in states that have one (their cards' locks
// guard them), and the nonrefundable_credit accounts of merchants and of
// the organizer (ref "") into contras, keyed by merchant id: the accounts
// an upload's debits spend such credit into.
func queueReadNonRefundable(b *pgx.Batch, org int64, states map[string]*cardState, merchants []string, contras map[string]int64) {
	byAccount := map[int64]*cardState{}
	var ids []int64
	for _, st := range states {
		if st.nrAccount != 0 {
			byAccount[st.nrAccount] = st
			ids = append(ids, st.nrAccount)
		}
	}
	b.Queue(`SELECT account_id, side * balance FROM accounts WHERE org_id = $1 AND account_id = ANY($2)`, org, ids).
		Query(func(rows pgx.Rows) error {
			var id, bal int64
			_, err := pgx.ForEachRow(rows, []any{&id, &bal}, func() error {
				if st := byAccount[id]; st != nil {
					st.nrBalance = bal
				}
				return nil
			})
			return err
		})
	b.Queue(`SELECT ref, account_id FROM accounts WHERE org_id = $1 AND kind = 'nonrefundable_credit' AND ref = ANY($2)`,
		org, append(merchants, "")).Query(func(rows pgx.Rows) error {
		var ref string
		var id int64
		_, err := pgx.ForEachRow(rows, []any{&ref, &id}, func() error {
			contras[ref] = id
			return nil
		})
		return err
	})
}
