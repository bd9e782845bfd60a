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
	"github.com/loopcard/loopcard/ledger/txid"
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
	// RefundLosses is what the organizer paid merchants for debits that
	// reached the ledger after their card's refund was paid out.
	RefundLosses AccountKind = "refund_losses"
	// ChargebackLosses is what chargebacks cost the organizer: credit
	// spent before the provider took its payment back.
	ChargebackLosses AccountKind = "chargeback_losses"
	// CardNonRefundable is the part of a card's credit that is not
	// refundable (vouchers, comps, welcome credit), kept beside the card
	// account that holds all of it (ref: card id); terminal debits spend
	// it first. NonRefundableCredit is its other side: the organizer's
	// (ref "") and one per merchant (ref: merchant id), what was spent
	// there; the sum of all of both kinds is zero. Promotions is what the organizer granted as
	// such credit.
	CardNonRefundable   AccountKind = "card_nonrefundable"
	NonRefundableCredit AccountKind = "nonrefundable_credit"
	Promotions          AccountKind = "promotions"
)

type accountSpec struct {
	side  int16
	floor *int64
}

var zero = int64(0)

var accountSpecs = map[AccountKind]accountSpec{
	Card:                {-1, &zero},
	Merchant:            {-1, &zero},
	StoreCash:           {1, &zero},
	ProviderClearing:    {1, nil},
	CardDeposits:        {-1, &zero},
	RefundsPayable:      {-1, &zero},
	Breakage:            {-1, nil},
	PendingLoads:        {-1, &zero},
	Bank:                {1, nil},
	RefundLosses:        {1, nil},
	ChargebackLosses:    {1, nil},
	CardNonRefundable:   {-1, &zero},
	NonRefundableCredit: {1, nil},
	Promotions:          {1, nil},
}

// organizerAccounts are created with each organizer.
var organizerAccounts = []AccountKind{CardDeposits, RefundsPayable, Breakage, PendingLoads, Bank, RefundLosses, ChargebackLosses,
	NonRefundableCredit, Promotions}

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
	id       txid.ID
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

// queueLockAccounts queues locking accounts in account-id order. Card
// accounts are not locked here: their cards' rows are (see lockCards).
func queueLockAccounts(b *pgx.Batch, org int64, ids []int64) {
	if len(ids) == 0 {
		return
	}
	ids = append([]int64(nil), ids...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b.Queue(`SELECT x.account_id FROM (SELECT DISTINCT id FROM unnest($2::bigint[]) id ORDER BY id) q
		CROSS JOIN LATERAL (SELECT account_id FROM accounts a WHERE a.org_id = $1 AND a.account_id = q.id FOR UPDATE) x`, org, ids)
}

// writeEntries checks and writes journal entries with their postings; see
// entryRows.
func writeEntries(ctx context.Context, tx pgx.Tx, org int64, entries []entry, locked map[int64]bool) error {
	if len(entries) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	var r entryRows
	if err := r.add(entries, locked); err != nil {
		return err
	}
	queueLockAccounts(b, org, r.toLock)
	sql, args := r.statement(org, 2)
	b.Queue(sql, append([]any{org}, args...)...)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger: write entries: %w", dbError(err))
	}
	return nil
}

// entryRows gathers journal entries and their postings for one statement.
type entryRows struct {
	jIDs                   []pgtype.UUID
	jKinds, jEvents, jRefs []string
	jAts                   []time.Time
	pIDs                   []pgtype.UUID
	pLines                 []int16
	pAccts, pAmts          []int64
	// toLock are the accounts to lock before writing: those not in locked
	// (card accounts, whose cards are locked), when there are several; a
	// single one needs no explicit lock, since the postings trigger locks it
	// and nothing waits for a card while holding a shared account.
	toLock []int64
}

// add checks entries and adds them.
func (r *entryRows) add(entries []entry, locked map[int64]bool) error {
	seen := map[int64]bool{}
	for i := range entries {
		e := &entries[i]
		if err := e.check(); err != nil {
			return err
		}
		id := pgtype.UUID{Bytes: e.id, Valid: true}
		r.jIDs = append(r.jIDs, id)
		r.jKinds = append(r.jKinds, e.kind)
		r.jEvents = append(r.jEvents, e.event)
		r.jRefs = append(r.jRefs, e.ref)
		r.jAts = append(r.jAts, e.at)
		for k, p := range e.postings {
			r.pIDs = append(r.pIDs, id)
			r.pLines = append(r.pLines, int16(k+1))
			r.pAccts = append(r.pAccts, p.account)
			r.pAmts = append(r.pAmts, p.amount)
			if !locked[p.account] && !seen[p.account] {
				seen[p.account] = true
				r.toLock = append(r.toLock, p.account)
			}
		}
	}
	if len(r.toLock) < 2 {
		r.toLock = nil
	}
	return nil
}

// statement returns the SQL that inserts the journal entries and postings
// (the postings last, so the trigger sees the entries) and its arguments,
// numbered from $first; $1 is the organizer. The SQL is a data-modifying
// WITH clause followed by the final INSERT, so that other inserts can be
// prepended to it as further WITH items.
func (r *entryRows) statement(org int64, first int) (string, []any) {
	n := func(k int) string { return fmt.Sprintf("$%d", first+k) }
	sql := `j AS (INSERT INTO journal (org_id, txn_id, kind, event_id, ref, at)
		SELECT $1, * FROM unnest(` + n(0) + `::uuid[], ` + n(1) + `::text[], ` + n(2) + `::text[], ` + n(3) + `::text[], ` + n(4) + `::timestamptz[]))
	INSERT INTO postings (org_id, txn_id, line, account_id, amount)
		SELECT $1, * FROM unnest(` + n(5) + `::uuid[], ` + n(6) + `::smallint[], ` + n(7) + `::bigint[], ` + n(8) + `::bigint[])`
	return "WITH " + sql, []any{r.jIDs, r.jKinds, r.jEvents, r.jRefs, r.jAts, r.pIDs, r.pLines, r.pAccts, r.pAmts}
}

// cardState is a locked card with its ledger balance.
type cardState struct {
	card    []byte
	event   string
	account int64
	status  string // uploads read it only for cards with an alert (activeCardAlerts)
	balance int64  // normal side: the credit on the card
	blocked bool   // an upload raised an alert for it
	paidOut bool   // its credit left: refund paid out, or replaced and settled (read with status)
	// The tip of the card's chain (migration 017): the highest card
	// sequence written, -1 if none, and the balance after it.
	chainSeq, chainAfter int64
	// The card's non-refundable part, for uploads (queueLockCardAccounts):
	// its account (0: none) and, read when it has one, its balance.
	nrAccount, nrBalance int64
}

// lockCards locks the given cards in account-id order and returns those
// that exist with their balances, keyed by string(card id). See
// queueLockCards.
func lockCards(ctx context.Context, tx pgx.Tx, org int64, cards [][]byte) (map[string]*cardState, error) {
	out := make(map[string]*cardState, len(cards))
	if len(cards) == 0 {
		return out, nil
	}
	b := &pgx.Batch{}
	queueLockCards(b, org, cards, out)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("ledger: lock cards: %w", err)
	}
	return out, nil
}

// queueLockCards queues locking the accounts of the given cards in
// account-id order, the order in which uploads lock them too (see
// queueLockCardAccounts), and reading the cards and balances into out. A
// card is locked through its account row: whoever changes a card's balance
// or status holds that lock. When a locked row was changed by a
// transaction that committed while this one waited, PostgreSQL re-reads
// it, so the balances read are the latest.
func queueLockCards(b *pgx.Batch, org int64, cards [][]byte, out map[string]*cardState) {
	// One index lookup per card and per account: never a scan of the large
	// cards and accounts tables, even in a cached generic plan that cannot
	// know how many cards there are. Each table has a subquery of its own,
	// kept one (OFFSET 0, ORDER BY, FOR UPDATE): joined or flattened, the
	// planner may pick, from statistics taken while the tables were small,
	// a scan of the organizer's cards or accounts. The accounts are locked
	// as the nested loop meets them, in the order of the sorted cards
	// subquery. The account row is what is locked, so the balance and chain
	// tip read from it are the latest committed even when the lock had to
	// wait.
	b.Queue(`SELECT c.card_id, c.event_id, c.account_id, c.status, a.bal, a.chain_seq, a.chain_after
		FROM (SELECT c.card_id, c.event_id, c.account_id, c.status
			FROM (SELECT DISTINCT id FROM unnest($2::bytea[]) id) q
			CROSS JOIN LATERAL (SELECT card_id, event_id, account_id, status FROM cards
				WHERE org_id = $1 AND card_id = q.id OFFSET 0) c
			ORDER BY c.account_id) c
		CROSS JOIN LATERAL (SELECT side * balance AS bal, coalesce(chain_seq, -1) AS chain_seq,
				coalesce(chain_after, 0) AS chain_after FROM accounts
			WHERE org_id = $1 AND account_id = c.account_id FOR UPDATE) a`, org, cards).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			s := &cardState{}
			if err := rows.Scan(&s.card, &s.event, &s.account, &s.status, &s.balance, &s.chainSeq, &s.chainAfter); err != nil {
				return err
			}
			out[string(s.card)] = s
		}
		return rows.Err()
	})
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
// postings (stored ones and those of directly posted terminal debits, see
// the ledger_postings view), every journal entry balances, every terminal
// debit posts between its own card's and merchant's accounts, every
// balance is at or above its floor, every card's chain tip is its last
// card write, and every card's non-refundable credit lies within its credit
// and sums to zero against the organizer's NonRefundableCredit. It returns an *InvariantError naming
// the first problem.
func (l *Ledger) Verify(ctx context.Context) error {
	checks := []struct {
		problem string
		sql     string
	}{
		{"sum of all balances is not zero", `SELECT EXISTS (SELECT 1 FROM accounts HAVING coalesce(sum(balance::numeric), 0) <> 0)`},
		{"an account balance differs from the sum of its postings", `SELECT EXISTS (
			SELECT 1 FROM accounts a LEFT JOIN (SELECT org_id, account_id, sum(amount::numeric) AS s FROM ledger_postings GROUP BY 1, 2) p
			USING (org_id, account_id) WHERE a.balance <> coalesce(p.s, 0))`},
		{"a journal entry does not balance", `SELECT EXISTS (SELECT 1 FROM postings GROUP BY org_id, txn_id HAVING sum(amount::numeric) <> 0)`},
		{"postings without a journal entry", `SELECT EXISTS (SELECT 1 FROM postings p WHERE NOT EXISTS (
			SELECT 1 FROM journal j WHERE j.org_id = p.org_id AND j.txn_id = p.txn_id))`},
		{"a terminal debit posts to accounts other than its card's and merchant's", `SELECT EXISTS (SELECT 1 FROM terminal_txs t
			LEFT JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id
			LEFT JOIN merchants m ON m.org_id = t.org_id AND m.merchant_id = t.merchant_id
			WHERE t.card_account IS NOT NULL
			AND (c.account_id IS DISTINCT FROM t.card_account OR m.account_id IS DISTINCT FROM t.merchant_account))`},
		{"a terminal debit spends non-refundable credit other than its card's into an account other than its merchant's or organizer's",
			`SELECT EXISTS (SELECT 1 FROM terminal_txs t
			JOIN accounts a ON a.org_id = t.org_id AND a.account_id = t.card_account
			LEFT JOIN accounts x ON x.org_id = t.org_id AND x.account_id = t.nonrefundable_contra
			WHERE t.nonrefundable_spent IS NOT NULL
			AND (a.nonrefundable_account IS DISTINCT FROM t.nonrefundable_account
				OR x.kind IS DISTINCT FROM 'nonrefundable_credit' OR x.ref NOT IN (t.merchant_id, '')))`},
		{"a posted terminal debit has no postings", `SELECT EXISTS (SELECT 1 FROM terminal_txs t
			WHERE t.status = 'posted' AND t.card_account IS NULL
			AND NOT EXISTS (SELECT 1 FROM journal j WHERE j.org_id = t.org_id AND j.txn_id = t.txn_id))`},
		{"a balance is below its floor", `SELECT EXISTS (SELECT 1 FROM accounts WHERE floor IS NOT NULL AND side * balance < floor)`},
		// Credit kinds (migration 025): each card's non-refundable part is
		// its own, within its credit, and all of them sum against the
		// organizer's other side.
		{"a card's non-refundable credit exceeds its credit", `SELECT EXISTS (SELECT 1 FROM accounts a
			JOIN accounts n ON n.org_id = a.org_id AND n.account_id = a.nonrefundable_account
			WHERE a.kind <> 'card' OR n.kind <> 'card_nonrefundable' OR n.ref <> a.ref OR n.side * n.balance > a.side * a.balance)`},
		{"a non-refundable account belongs to no card account", `SELECT EXISTS (SELECT 1 FROM accounts n
			WHERE n.kind = 'card_nonrefundable' AND NOT EXISTS (SELECT 1 FROM accounts a
				WHERE a.org_id = n.org_id AND a.nonrefundable_account = n.account_id))`},
		{"non-refundable credit does not sum to zero against its other side", `SELECT EXISTS (SELECT 1 FROM accounts
			WHERE kind IN ('card_nonrefundable', 'nonrefundable_credit') GROUP BY org_id HAVING sum(balance::numeric) <> 0)`},
		// Uploads trust the tip to say that nothing lies beyond it.
		{"a card's chain tip differs from its last card write", `SELECT EXISTS (SELECT 1 FROM accounts a
			LEFT JOIN cards c ON c.org_id = a.org_id AND c.account_id = a.account_id
			LEFT JOIN LATERAL (SELECT card_seq, balance_after FROM card_chain ch
				WHERE ch.org_id = c.org_id AND ch.card_id = c.card_id ORDER BY card_seq DESC LIMIT 1) t ON true
			WHERE a.chain_seq IS DISTINCT FROM t.card_seq OR a.chain_after IS DISTINCT FROM t.balance_after)`},
		// The dashboard's totals (migrations 031 and 033): rolled up to the
		// organizer's mark, with the rows above it, they are what the rows
		// add up to.
		{"the terminal sales totals differ from the terminal transactions", `SELECT EXISTS (
			SELECT 1 FROM (SELECT org_id, event_id, terminal_id, hour, merchant_id, status, sum(count) AS count, sum(amount) AS amount
					FROM (SELECT org_id, event_id, terminal_id, hour, merchant_id, status, count, amount FROM terminal_sales
						UNION ALL
						SELECT o.org_id, s.* FROM organizers o LEFT JOIN dashboard_rollups r USING (org_id)
						CROSS JOIN LATERAL ledger_sales_since(o.org_id, coalesce(r.upto, 0), NULL) s) x
					GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(count) <> 0 OR sum(amount) <> 0) s
			FULL JOIN (SELECT t.org_id, c.event_id, t.terminal_id, date_trunc('hour', t.at, 'UTC') AS hour, t.merchant_id, t.status,
					count(*) AS count, sum(t.amount) AS amount
				FROM terminal_txs t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id GROUP BY 1, 2, 3, 4, 5, 6) r
			USING (org_id, event_id, terminal_id, hour, merchant_id, status)
			WHERE s.count IS DISTINCT FROM r.count OR s.amount IS DISTINCT FROM r.amount)`},
		{"the card totals differ from the cards' balances", `SELECT EXISTS (
			SELECT 1 FROM (SELECT org_id, event_id, sum(with_money) AS with_money, sum(outstanding) AS outstanding
					FROM (SELECT org_id, event_id, with_money, outstanding FROM card_totals
						UNION ALL
						SELECT o.org_id, s.* FROM organizers o LEFT JOIN dashboard_rollups r USING (org_id)
						CROSS JOIN LATERAL ledger_card_totals_since(o.org_id, coalesce(r.upto, 0), NULL) s) x
					GROUP BY 1, 2 HAVING sum(with_money) <> 0 OR sum(outstanding) <> 0) t
			FULL JOIN (SELECT c.org_id, c.event_id, count(*) FILTER (WHERE a.side * a.balance > 0) AS with_money,
					sum(a.side * a.balance) AS outstanding
				FROM cards c JOIN accounts a ON a.org_id = c.org_id AND a.account_id = c.account_id GROUP BY 1, 2
				HAVING count(*) FILTER (WHERE a.side * a.balance > 0) <> 0 OR sum(a.side * a.balance) <> 0) r
			USING (org_id, event_id)
			WHERE t.with_money IS DISTINCT FROM r.with_money OR t.outstanding IS DISTINCT FROM r.outstanding)`},
		{"the top-up totals differ from the top-ups", `SELECT EXISTS (
			SELECT 1 FROM (SELECT org_id, event_id, channel, status, sum(count) AS count, sum(amount) AS amount FROM topup_totals
					GROUP BY 1, 2, 3, 4 HAVING sum(count) <> 0 OR sum(amount) <> 0) s
			FULL JOIN (SELECT t.org_id, c.event_id, t.channel, t.status, count(*) AS count, sum(t.amount) AS amount
				FROM topups t JOIN cards c ON c.org_id = t.org_id AND c.card_id = t.card_id GROUP BY 1, 2, 3, 4) r
			USING (org_id, event_id, channel, status)
			WHERE s.count IS DISTINCT FROM r.count OR s.amount IS DISTINCT FROM r.amount)`},
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
