package runbook

import (
	"fmt"
	"io"
	"sort"
)

// Summary is what the run did and found, from the commands' own output.
// The end-to-end test checks its figures.
type Summary struct {
	DataDir   string `json:"data_dir"`
	Organizer int64  `json:"organizer"`
	API       string `json:"api"`
	// Files names the outputs left in the data directory.
	Files map[string]string `json:"files"`
	Keys  []KeyLine         `json:"keys"`

	Batch         int64 `json:"batch"`
	CardsIssued   int   `json:"cards_issued"`
	CardsRecorded int   `json:"cards_recorded"`
	CardsSold     int   `json:"cards_sold"`

	Stores    []StoreDay      `json:"stores"`
	Terminals []*TerminalStat `json:"terminals"`
	Clone     CloneCheck      `json:"clone"`
	Online    OnlineTopUp     `json:"online_topup"`
	Auto      AutoTopUp       `json:"auto_topup"`
	Refund    RefundCheck     `json:"refund"`
	Audit     AuditCheck      `json:"audit"`
	Ledger    LedgerCheck     `json:"ledger"`
	// Cards is each card as read from the card and as the ledger has it.
	Cards []CardCheck `json:"cards"`

	// Taken is the payments the terminals took from cards; Counted the
	// terminal transactions the ledger recorded (posted or held).
	Taken   int `json:"payments_taken"`
	Counted int `json:"payments_counted"`

	Steps   []Step  `json:"steps"`
	Seconds float64 `json:"seconds"`
}

// KeyLine is one key in the HSM, as `loopcard keys list` shows it.
type KeyLine struct {
	Label   string `json:"label"`
	Type    string `json:"type"`
	Version int    `json:"version"`
	KCV     string `json:"kcv"`
}

// StoreDay is one store's day, as its day close and `report stores` say.
type StoreDay struct {
	Store        string `json:"store"`
	Received     int    `json:"cards_received"`
	Sold         int    `json:"cards_sold"`
	InStock      int    `json:"cards_in_stock"`
	CashExpected int64  `json:"cash_expected"`
	CashCounted  int64  `json:"cash_counted"`
	Balanced     bool   `json:"balanced"`
}

// TerminalStat is what one terminal did.
type TerminalStat struct {
	ID       string `json:"terminal"`
	Merchant string `json:"merchant"`
	Taken    int    `json:"payments_taken"`
	Amount   int64  `json:"amount_taken"`
	Declined int    `json:"declined"`
}

// CloneCheck is the cloned card's fate.
type CloneCheck struct {
	Number  string `json:"card_number"`
	Alert   string `json:"alert"`
	Status  string `json:"status"`
	Blocked bool   `json:"blocked"`
}

// OnlineTopUp is the cardholder's top-up through the card page.
type OnlineTopUp struct {
	Number        string `json:"card_number"`
	Amount        int64  `json:"amount"`
	PendingBefore int64  `json:"pending_before_tap"`
	CardBalance   int64  `json:"card_balance"`
	LedgerBalance int64  `json:"ledger_balance"`
	// PageShows is true when the card page, opened in Chromium, showed
	// the balance the card holds.
	PageShows bool `json:"card_page_shows_balance"`
}

// AutoTopUp is the auto top-up a claimed profile set on a card: the tap
// below its threshold charged it (at the test provider) and wrote the
// load onto the card at that same tap.
type AutoTopUp struct {
	Number    string `json:"card_number"`
	Amount    int64  `json:"amount"`
	Threshold int64  `json:"threshold"`
	// Before is the card's balance before the tap, CardBalance after it
	// (the load written, the payment taken), LedgerBalance the ledger's.
	Before        int64 `json:"balance_before_tap"`
	CardBalance   int64 `json:"card_balance"`
	LedgerBalance int64 `json:"ledger_balance"`
	// Charges is how many charges the profile's page lists, and
	// PageShowsCharge whether it lists this one as paid.
	Charges         int  `json:"charges"`
	PageShowsCharge bool `json:"page_shows_charge"`
}

// RefundCheck is the refund a cardholder asked for and its payout file.
type RefundCheck struct {
	Number  string `json:"card_number"`
	Amount  int64  `json:"amount"`
	Payout  string `json:"payout_file"`
	Refunds int    `json:"refunds_in_file"`
}

// AuditCheck is the offline verification of the audit export.
type AuditCheck struct {
	Entries  int64 `json:"entries"`
	Verified bool  `json:"verified"`
}

// LedgerCheck is the ledger's own check (`loopcard ledger verify`: every
// entry balances and the accounts sum to zero) and its terminal payments.
type LedgerCheck struct {
	Verified bool `json:"verified"`
	Posted   int  `json:"posted"`
	Held     int  `json:"held"`
}

// CardCheck is one card: its balance read from the card, and the ledger's.
type CardCheck struct {
	Number        string `json:"card_number"`
	CardBalance   int64  `json:"card_balance"`
	LedgerBalance int64  `json:"ledger_balance"`
	Pending       int64  `json:"pending"`
	// Refunded is what was paid back to the holder: the card still holds
	// it, the ledger no longer does.
	Refunded int64 `json:"refunded,omitempty"`
}

// Step is one step's duration.
type Step struct {
	Name    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// Agree reports whether every card's balance equals the ledger's, with
// nothing pending (plus what was refunded, for a refunded card).
func (s *Summary) Agree() bool {
	for _, c := range s.Cards {
		if c.CardBalance != c.LedgerBalance+c.Refunded || c.Pending != 0 {
			return false
		}
	}
	return len(s.Cards) > 0
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("\nsummary (organizer %d, API %s, %.1f s)", s.Organizer, s.API, s.Seconds)
	p("  cards issued %d, recorded %d, sold %d", s.CardsIssued, s.CardsRecorded, s.CardsSold)
	for _, d := range s.Stores {
		p("  %s: received %d, sold %d, in stock %d; cash expected %s, counted %s, balanced %v",
			d.Store, d.Received, d.Sold, d.InStock, money(d.CashExpected), money(d.CashCounted), d.Balanced)
	}
	p("  payments taken %d, counted by the ledger %d (%d posted, %d held)", s.Taken, s.Counted, s.Ledger.Posted, s.Ledger.Held)
	p("  clone of %s: alert %q, card %s", s.Clone.Number, s.Clone.Alert, s.Clone.Status)
	p("  online top-up of %s on %s: card %s, ledger %s", money(s.Online.Amount), s.Online.Number, money(s.Online.CardBalance), money(s.Online.LedgerBalance))
	p("  refund of %s for %s in %s", money(s.Refund.Amount), s.Refund.Number, s.Refund.Payout)
	p("  audit export verified %v (%d entries); ledger verified %v (balances, sum zero)", s.Audit.Verified, s.Audit.Entries, s.Ledger.Verified)
	p("  every card read from the card equals the ledger: %v (%d cards)", s.Agree(), len(s.Cards))
	names := make([]string, 0, len(s.Files))
	for k := range s.Files {
		names = append(names, k)
	}
	sort.Strings(names)
	p("files:")
	for _, k := range names {
		p("  %-14s %s", k, s.Files[k])
	}
	return nil
}
