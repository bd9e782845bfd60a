package demo

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// Summary is what the demo did and found. Its figures are checked by the
// end-to-end test.
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
	CardsInLedger int   `json:"cards_in_ledger"`
	CardsSold     int   `json:"cards_sold"`

	Stores    []StoreDay     `json:"stores"`
	Terminals []TerminalStat `json:"terminals"`
	Clone     CloneCheck     `json:"clone"`
	Online    *OnlineTopUp   `json:"online_topup,omitempty"`
	Audit     AuditCheck     `json:"audit"`
	Ledger    LedgerCheck    `json:"ledger"`

	// Taken is the payments the terminals took from cards; Counted the
	// terminal transactions the ledger recorded (posted or held). Every
	// taken payment is counted exactly once when they are equal.
	Taken   int `json:"payments_taken"`
	Counted int `json:"payments_counted"`

	// Skipped lists steps left out, each "step: reason".
	Skipped []string `json:"skipped,omitempty"`
	Steps   []Step   `json:"steps"`
	Seconds float64  `json:"seconds"`
}

// KeyLine is one key in the HSM.
type KeyLine struct {
	Label string `json:"label"`
	Type  string `json:"type"`
	KCV   string `json:"kcv"`
}

// StoreDay is one store's day close.
type StoreDay struct {
	Store        string `json:"store"`
	Received     int    `json:"cards_received"`
	Sold         int    `json:"cards_sold"`
	InStock      int    `json:"cards_in_stock"`
	CashExpected int64  `json:"cash_expected"` // the ledger's store cash account
	CashCounted  int64  `json:"cash_counted"`  // what the store took in
	Balanced     bool   `json:"balanced"`
}

// TerminalStat is what one terminal did.
type TerminalStat struct {
	ID         string `json:"terminal"`
	Merchant   string `json:"merchant"`
	Taken      int    `json:"payments_taken"`
	Amount     int64  `json:"amount_taken"`
	Declined   int    `json:"declined"`
	Accepted   int    `json:"accepted"`
	Duplicates int    `json:"duplicates"`
	Held       int    `json:"held"`
	Rejected   int    `json:"rejected"`
}

// CloneCheck is the cloned card's fate.
type CloneCheck struct {
	Card    string `json:"card"`
	Number  string `json:"card_number"`
	Alert   string `json:"alert"`
	Status  string `json:"status"`
	Blocked bool   `json:"blocked"`
}

// AuditCheck is the offline verification of the audit export.
type AuditCheck struct {
	Entries     int64  `json:"entries"`
	Checkpoints int    `json:"checkpoints"`
	Root        string `json:"root"`
	Verified    bool   `json:"verified"`
}

// LedgerCheck is the ledger's own check and its sum.
type LedgerCheck struct {
	Verified bool  `json:"verified"`
	Accounts int   `json:"accounts"`
	Sum      int64 `json:"sum"`
	Accepted int   `json:"posted"`
	Held     int   `json:"held"`
}

// Step is one step's duration.
type Step struct {
	Name    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("\nSummary")
	p("  cards issued %d, recorded %d, in the ledger %d, sold %d", s.CardsIssued, s.CardsRecorded, s.CardsInLedger, s.CardsSold)
	for _, st := range s.Stores {
		p("  %-12s received %d, sold %d, in stock %d, cash expected %s = counted %s: %v",
			st.Store, st.Received, st.Sold, st.InStock, money(st.CashExpected), money(st.CashCounted), st.Balanced)
	}
	for _, t := range s.Terminals {
		p("  %-12s took %d payments (%s); ledger: %d accepted, %d duplicates, %d held, %d rejected",
			t.ID, t.Taken, money(t.Amount), t.Accepted, t.Duplicates, t.Held, t.Rejected)
	}
	p("  payments taken %d, counted by the ledger %d", s.Taken, s.Counted)
	p("  cloned card %s: alert %q, %s", s.Clone.Number, s.Clone.Alert, s.Clone.Status)
	if o := s.Online; o != nil {
		p("  online top-up of %s on card %s: %d webhook deliveries, %d pending load, %d written; card %s = ledger %s",
			money(o.Amount), o.Card, o.Deliveries, o.Pending, o.Loaded, money(o.CardBalance), money(o.LedgerBalance))
	}
	p("  ledger verified %v, %d accounts sum to %d", s.Ledger.Verified, s.Ledger.Accounts, s.Ledger.Sum)
	p("  audit export verified %v (%d entries, %d checkpoints)", s.Audit.Verified, s.Audit.Entries, s.Audit.Checkpoints)
	for _, sk := range s.Skipped {
		p("  skipped: %s", sk)
	}
	p("  %.1f s", s.Seconds)
	p("\nFiles")
	names := make([]string, 0, len(s.Files))
	for k := range s.Files {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p("  %-14s %s", k, s.Files[k])
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeDayClose(path string, days []StoreDay) error {
	rows := [][]string{{"store", "cards_received", "cards_sold", "cards_in_stock", "cash_expected", "cash_counted", "balanced"}}
	for _, d := range days {
		rows = append(rows, []string{d.Store, strconv.Itoa(d.Received), strconv.Itoa(d.Sold), strconv.Itoa(d.InStock),
			money(d.CashExpected), money(d.CashCounted), strconv.FormatBool(d.Balanced)})
	}
	return writeCSV(path, rows)
}

func writeTransactions(ctx context.Context, pool *pgxpool.Pool, org int64, path string) error {
	rows, err := pool.Query(ctx, `SELECT txn_id, terminal_id, terminal_seq, card_id, card_seq, amount, balance_before, balance_after,
		merchant_id, status, hold_reason FROM terminal_txs WHERE org_id = $1 ORDER BY terminal_id, terminal_seq`, org)
	if err != nil {
		return err
	}
	defer rows.Close()
	out := [][]string{{"id", "terminal", "terminal_seq", "card", "card_seq", "amount", "balance_before", "balance_after", "merchant", "status", "reason"}}
	for rows.Next() {
		var id terminaltx.ID
		var term, merchant, status, reason string
		var tseq, cseq, amount, before, after int64
		var card []byte
		if err := rows.Scan(&id, &term, &tseq, &card, &cseq, &amount, &before, &after, &merchant, &status, &reason); err != nil {
			return err
		}
		out = append(out, []string{id.String(), term, strconv.FormatInt(tseq, 10), terminaltx.CardHex(card), strconv.FormatInt(cseq, 10),
			money(amount), money(before), money(after), merchant, status, reason})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return writeCSV(path, out)
}
