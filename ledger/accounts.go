package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// AccountKind is what an account holds.
type AccountKind string

// Account kinds. Per-organizer accounts have an empty ref; the others are
// one per card (ref: card id in hex), merchant, store or payment provider.
const (
	Card             AccountKind = "card"              // credit on a card (ref: card id)
	Merchant         AccountKind = "merchant"          // owed to a merchant (ref: merchant id)
	StoreCash        AccountKind = "store_cash"        // cash in a store's till (ref: store id)
	ProviderClearing AccountKind = "provider_clearing" // held by a payment provider (ref: provider)
	CardDeposits     AccountKind = "card_deposits"     // card deposits owed back on return
	RefundsPayable   AccountKind = "refunds_payable"   // refunds requested, not yet paid out
	Breakage         AccountKind = "breakage"          // balances nobody claimed in time
	PendingLoads     AccountKind = "pending_loads"     // paid online, not yet written to a card
	Bank             AccountKind = "bank"              // the organizer's bank account (payouts)
)

type accountSpec struct {
	side  int16
	floor *int64
}

var zero = int64(0)

var accountSpecs = map[AccountKind]accountSpec{
	Card:             {-1, &zero},
	Merchant:         {-1, &zero},
	StoreCash:        {1, &zero},
	ProviderClearing: {1, nil},
	CardDeposits:     {-1, &zero},
	RefundsPayable:   {-1, &zero},
	Breakage:         {-1, nil},
	PendingLoads:     {-1, &zero},
	Bank:             {1, nil},
}

// organizerAccounts are created with each organizer.
var organizerAccounts = []AccountKind{CardDeposits, RefundsPayable, Breakage, PendingLoads, Bank}

// ensureAccount returns the id of the account (kind, ref), creating it.
func ensureAccount(ctx context.Context, q pgx.Tx, org int64, kind AccountKind, ref string) (int64, error) {
	spec, ok := accountSpecs[kind]
	if !ok {
		return 0, fmt.Errorf("%w: unknown account kind %q", ErrInvalid, kind)
	}
	var id int64
	err := q.QueryRow(ctx, `INSERT INTO accounts (org_id, kind, ref, side, floor) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (org_id, kind, ref) DO NOTHING RETURNING account_id`, org, string(kind), ref, spec.side, spec.floor).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = q.QueryRow(ctx, `SELECT account_id FROM accounts WHERE org_id = $1 AND kind = $2 AND ref = $3`,
			org, string(kind), ref).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("ledger: account %s/%s: %w", kind, ref, err)
	}
	return id, nil
}

// accountID looks an existing account up.
func accountID(ctx context.Context, q pgx.Tx, org int64, kind AccountKind, ref string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT account_id FROM accounts WHERE org_id = $1 AND kind = $2 AND ref = $3`,
		org, string(kind), ref).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: account %s %q of organizer %d", ErrNotFound, kind, ref, org)
	}
	return id, err
}

// Balance returns the normal-side balance of account (kind, ref): for a card,
// the credit on it; for store cash, the cash in the till.
func (l *Ledger) Balance(ctx context.Context, org int64, kind AccountKind, ref string) (int64, error) {
	var b int64
	err := l.pool.QueryRow(ctx, `SELECT side * balance FROM accounts WHERE org_id = $1 AND kind = $2 AND ref = $3`,
		org, string(kind), ref).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("%w: account %s %q", ErrNotFound, kind, ref)
	}
	return b, err
}

// CardBalance returns the credit the ledger holds for a card.
func (l *Ledger) CardBalance(ctx context.Context, org int64, card []byte) (int64, error) {
	return l.Balance(ctx, org, Card, terminaltx.CardHex(card))
}

// posting is one line of a journal entry: positive debits, negative credits.
type posting struct {
	account int64
	amount  int64
}

// entry is one balanced ledger transaction.
type entry struct {
	id       terminaltx.ID
	kind     string
	event    string
	ref      string
	at       time.Time
	postings []posting
}

// check verifies in Go what the database verifies again: the entry
// balances, without overflow, and has no zero lines.
func (e *entry) check() error {
	var sum int64
	if len(e.postings) < 2 {
		return fmt.Errorf("%w: %s entry has %d postings", ErrUnbalanced, e.kind, len(e.postings))
	}
	for _, p := range e.postings {
		if p.amount == 0 {
			return fmt.Errorf("%w: zero posting in %s entry", ErrInvalid, e.kind)
		}
		s := sum + p.amount
		if (p.amount > 0 && s < sum) || (p.amount < 0 && s > sum) {
			return fmt.Errorf("%w: overflow in %s entry", ErrInvalid, e.kind)
		}
		sum = s
	}
	if sum != 0 {
		return fmt.Errorf("%w: %s entry sums to %d", ErrUnbalanced, e.kind, sum)
	}
	return nil
}

// transfer is the usual two-line entry: amount moves from the credited
// account to the debited one.
func transfer(debit, credit, amount int64) []posting {
	return []posting{{debit, amount}, {credit, -amount}}
}

// lockAccounts locks accounts in account-id order. Card accounts must have
// been locked through lockCards before (see the package doc).
func lockAccounts(ctx context.Context, tx pgx.Tx, org int64, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	ids = append([]int64(nil), ids...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	rows, err := tx.Query(ctx, `SELECT account_id FROM accounts WHERE org_id = $1 AND account_id = ANY($2)
		ORDER BY account_id FOR UPDATE`, org, ids)
	if err != nil {
		return fmt.Errorf("ledger: lock accounts: %w", err)
	}
	rows.Close()
	return rows.Err()
}

// writeEntries checks and writes journal entries and their postings, locking
// every account they touch that is not in locked (card accounts locked by
// lockCards). The database applies the postings to the balances.
func writeEntries(ctx context.Context, tx pgx.Tx, org int64, entries []entry, locked map[int64]bool) error {
	if len(entries) == 0 {
		return nil
	}
	n := 0
	for i := range entries {
		if err := entries[i].check(); err != nil {
			return err
		}
		n += len(entries[i].postings)
	}
	var (
		jIDs    = make([]pgtype.UUID, len(entries))
		jKinds  = make([]string, len(entries))
		jEvents = make([]string, len(entries))
		jRefs   = make([]string, len(entries))
		jAts    = make([]time.Time, len(entries))
		pIDs    = make([]pgtype.UUID, 0, n)
		pLines  = make([]int16, 0, n)
		pAccts  = make([]int64, 0, n)
		pAmts   = make([]int64, 0, n)
		toLock  []int64
		seen    = map[int64]bool{}
	)
	for i, e := range entries {
		jIDs[i] = pgtype.UUID{Bytes: e.id, Valid: true}
		jKinds[i], jEvents[i], jRefs[i], jAts[i] = e.kind, e.event, e.ref, e.at
		for k, p := range e.postings {
			pIDs = append(pIDs, jIDs[i])
			pLines = append(pLines, int16(k+1))
			pAccts = append(pAccts, p.account)
			pAmts = append(pAmts, p.amount)
			if !locked[p.account] && !seen[p.account] {
				seen[p.account] = true
				toLock = append(toLock, p.account)
			}
		}
	}
	if err := lockAccounts(ctx, tx, org, toLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO journal (org_id, txn_id, kind, event_id, ref, at)
		SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])`,
		org, jIDs, jKinds, jEvents, jRefs, jAts); err != nil {
		return fmt.Errorf("ledger: journal: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO postings (org_id, txn_id, line, account_id, amount)
		SELECT $1, * FROM unnest($2::uuid[], $3::smallint[], $4::bigint[], $5::bigint[])`,
		org, pIDs, pLines, pAccts, pAmts); err != nil {
		return fmt.Errorf("ledger: postings: %w", dbError(err))
	}
	return nil
}

// cardState is a locked card with its ledger balance.
type cardState struct {
	card    []byte
	event   string
	account int64
	status  string
	balance int64 // normal side: the credit on the card
	blocked bool  // blocked by this transaction
}

// lockCards locks the given cards and their accounts in card-id order and
// returns those that exist, keyed by string(card id).
func lockCards(ctx context.Context, tx pgx.Tx, org int64, cards [][]byte) (map[string]*cardState, error) {
	out := make(map[string]*cardState, len(cards))
	if len(cards) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT c.card_id, c.event_id, c.account_id, c.status, a.side * a.balance
		FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id
		WHERE c.org_id = $1 AND c.card_id = ANY($2) ORDER BY c.card_id FOR UPDATE`, org, cards)
	if err != nil {
		return nil, fmt.Errorf("ledger: lock cards: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		s := &cardState{}
		if err := rows.Scan(&s.card, &s.event, &s.account, &s.status, &s.balance); err != nil {
			return nil, err
		}
		out[string(s.card)] = s
	}
	return out, rows.Err()
}

// lockCard locks one card, failing with ErrNotFound when it is unknown.
func lockCard(ctx context.Context, tx pgx.Tx, org int64, card []byte) (*cardState, error) {
	m, err := lockCards(ctx, tx, org, [][]byte{card})
	if err != nil {
		return nil, err
	}
	s, ok := m[string(card)]
	if !ok {
		return nil, fmt.Errorf("%w: card %s", ErrNotFound, terminaltx.CardHex(card))
	}
	return s, nil
}

// InvariantError describes a broken ledger invariant found by Verify.
type InvariantError struct{ Problem string }

func (e *InvariantError) Error() string { return "ledger: invariant broken: " + e.Problem }

// Verify checks the ledger's invariants across all organizers: the sum of
// all balances is zero, every account's balance equals the sum of its
// postings, every journal entry balances, and every balance is at or above
// its floor. It returns an *InvariantError naming the first problem.
func (l *Ledger) Verify(ctx context.Context) error {
	checks := []struct {
		problem string
		sql     string
	}{
		{"sum of all balances is not zero", `SELECT EXISTS (SELECT 1 FROM accounts HAVING coalesce(sum(balance::numeric), 0) <> 0)`},
		{"an account balance differs from the sum of its postings", `SELECT EXISTS (
			SELECT 1 FROM accounts a LEFT JOIN (SELECT org_id, account_id, sum(amount::numeric) AS s FROM postings GROUP BY 1, 2) p
			USING (org_id, account_id) WHERE a.balance <> coalesce(p.s, 0))`},
		{"a journal entry does not balance", `SELECT EXISTS (SELECT 1 FROM postings GROUP BY org_id, txn_id HAVING sum(amount::numeric) <> 0)`},
		{"postings without a journal entry", `SELECT EXISTS (SELECT 1 FROM postings p WHERE NOT EXISTS (
			SELECT 1 FROM journal j WHERE j.org_id = p.org_id AND j.txn_id = p.txn_id))`},
		{"a balance is below its floor", `SELECT EXISTS (SELECT 1 FROM accounts WHERE floor IS NOT NULL AND side * balance < floor)`},
	}
	for _, c := range checks {
		var bad bool
		if err := l.pool.QueryRow(ctx, c.sql).Scan(&bad); err != nil {
			return fmt.Errorf("ledger: verify: %w", err)
		}
		if bad {
			return &InvariantError{Problem: c.problem}
		}
	}
	return nil
}
