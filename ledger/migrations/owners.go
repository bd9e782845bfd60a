package migrations

import (
	"maps"
	"slices"
)

// The packages that own tables. Only the owner runs SQL on its tables;
// other packages ask it (docs/schema.md).
const (
	Ledger   = "ledger"
	Batch    = "personalize/batch"
	Handover = "personalize/handover"
	API      = "api"
)

// owners names the one package that owns each table and view of the
// schema. TestSchema fails when a table or view of the migrated database is
// missing here, or one named here is not in the database.
var owners = map[string]string{
	// Double-entry core, cards, terminals and their transactions, money.
	"accounts":              Ledger,
	"autotopup_charges":     Ledger,
	"autotopup_rules":       Ledger,
	"card_alert_actions":    Ledger,
	"card_alerts":           Ledger,
	"card_blocklist":        Ledger,
	"card_blocklist_heads":  Ledger,
	"card_chain":            Ledger, // view
	"card_events":           Ledger,
	"card_replacements":     Ledger,
	"cards":                 Ledger,
	"corrections":           Ledger,
	"events":                Ledger,
	"journal":               Ledger,
	"ledger_postings":       Ledger, // view
	"menus":                 Ledger,
	"merchants":             Ledger,
	"organizers":            Ledger,
	"payouts":               Ledger,
	"postings":              Ledger,
	"provider_events":       Ledger,
	"provider_refunds":      Ledger,
	"refunds":               Ledger,
	"store_card_moves":      Ledger,
	"store_day_closes":      Ledger,
	"stores":                Ledger,
	"terminal_refused_taps": Ledger,
	"terminal_tx_items":     Ledger,
	"terminal_sales":        Ledger, // the dashboard's totals (031, rolled up since 033)
	"terminal_txs":          Ledger,
	"terminals":             Ledger,
	"topup_totals":          Ledger, // the dashboard's running totals (031)
	"card_totals":           Ledger, // the dashboard's totals (033)
	"dashboard_rollups":     Ledger, // how far the dashboard's totals are rolled up (033)
	"topups":                Ledger,
	"unmatched_payments":    Ledger,
	"voucher_batches":       Ledger,
	"vouchers":              Ledger,

	// Card batches and their personalized cards.
	"batch_cards":  Batch,
	"card_batches": Batch,

	// The signed handover log.
	"handover_checkpoints": Handover,
	"handover_entries":     Handover,
	"handover_hashes":      Handover,
	"handover_logs":        Handover,
	"handover_store_keys":  Handover,

	// The HTTPS API's own tables.
	"api_alerts":          API,
	"api_audit":           API,
	"api_checkouts":       API,
	"api_consents":        API,
	"api_nonces":          API,
	"api_pin_attempts":    API,
	"api_profile_cards":   API,
	"api_profiles":        API,
	"api_refund_requests": API,
	"api_session_keys":    API,
	"api_staff":           API,
	"api_staff_sessions":  API,
	"api_store_keys":      API,
	"api_terminal_keys":   API,
	"api_tokens":          API,
}

// Owner returns the import path, relative to the module, of the package
// that owns table (a table or view of the public schema), and false when
// the table has no owner.
func Owner(table string) (pkg string, ok bool) {
	pkg, ok = owners[table]
	return pkg, ok
}

// Tables returns the tables and views that pkg owns, in name order; with
// pkg empty, every owned table.
func Tables(pkg string) []string {
	var out []string
	for _, t := range slices.Sorted(maps.Keys(owners)) {
		if pkg == "" || owners[t] == pkg {
			out = append(out, t)
		}
	}
	return out
}
