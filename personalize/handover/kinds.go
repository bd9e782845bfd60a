package handover

import "strings"

// Field is one of the optional fields of Entry, as a bit of a set.
type Field uint16

// The optional fields, in Entry's order.
const (
	FieldBatch Field = 1 << iota
	FieldEvent
	FieldStore
	FieldCard
	FieldCount
	FieldRoot
	FieldKey
	FieldCovers
	FieldHash
)

// fieldOrder names the fields in Entry's order.
var fieldOrder = [...]struct {
	f    Field
	name string
}{
	{FieldBatch, "batch"}, {FieldEvent, "event"}, {FieldStore, "store"}, {FieldCard, "card"},
	{FieldCount, "count"}, {FieldRoot, "root"}, {FieldKey, "key"}, {FieldCovers, "covers"}, {FieldHash, "hash"},
}

// Names returns the JSON names of the fields in f, in Entry's order.
func (f Field) Names() []string {
	var out []string
	for _, o := range fieldOrder {
		if f&o.f != 0 {
			out = append(out, o.name)
		}
	}
	return out
}

// fields returns the set of optional fields e has.
func (e *Entry) fields() Field {
	var f Field
	set := func(b bool, x Field) {
		if b {
			f |= x
		}
	}
	set(e.Batch != 0, FieldBatch)
	set(e.Event != "", FieldEvent)
	set(e.Store != "", FieldStore)
	set(e.Card != "", FieldCard)
	set(e.Count != nil, FieldCount)
	set(e.Root != "", FieldRoot)
	set(e.Key != "", FieldKey)
	set(e.Covers != nil, FieldCovers)
	set(e.Hash != "", FieldHash)
	return f
}

// Signers is who may sign an entry type, as a set.
type Signers uint8

const (
	// SignedByHQ: HQ's key.
	SignedByHQ Signers = 1 << iota
	// SignedByStore: the enrolled key of the store the entry names.
	SignedByStore
	// SignedByAnyone: any known key (a seal, over its signer's own
	// entries; Checker holds it to that).
	SignedByAnyone
)

// String says who, as docs/audit-export.md writes it.
func (s Signers) String() string {
	switch s {
	case SignedByHQ:
		return "HQ"
	case SignedByStore:
		return "the store named"
	case SignedByHQ | SignedByStore:
		return "HQ, or the store named (where the card is)"
	case SignedByAnyone:
		return "any enrolled signer"
	}
	return "nobody"
}

// Store routes: the API routes through which a store records entries
// signed with its own key (api/custody.go).
const (
	RouteReceipts   = "POST /v1/stores/{store}/receipts"
	RouteCardEvents = "POST /v1/stores/{store}/card-events"
)

// Kind is what the log knows about one entry type. Kinds lists them all;
// the entry codec (Validate), Checker, Tally, the API's store routes, the
// CLI (`loopcard handover card ...`) and the table of
// docs/audit-export.md (checked by a test) all read it, so that a new
// type is one row here plus its Tally rule when it moves batch counts.
type Kind struct {
	Type Type
	// Carries is the fields the type has; Requires those of them it must
	// have (a carried field not required may be empty). Every other
	// field must be empty.
	Carries, Requires Field
	// MinCount is the least Count, for types that carry one.
	MinCount int64
	// Signers is who may sign it.
	Signers Signers
	// StoreRoute is the API route through which a store records it with
	// its own key (RouteReceipts, RouteCardEvents), or "" when only HQ
	// records it through its own commands.
	StoreRoute string
	// CLI is its subcommand under `loopcard handover card`, for card
	// events; "" for the others.
	CLI string
	// Help says in a line what it records (CLI usage and docs).
	Help string
	// FieldsDoc, if set, is the docs' description of the fields, in place
	// of their names.
	FieldsDoc string
	// move is what a card event does to its card in Tally; nil for the
	// types that are not card events.
	move *cardMove
}

// cardMove is a card event's rule in Tally: the states the card may be
// in (inStock: taken from where the entry says it is) and the state it
// goes to.
type cardMove struct {
	from []cardState
	to   cardState
}

// CardEvent reports whether k is a per-card event.
func (k Kind) CardEvent() bool { return k.move != nil }

// kinds is the table. Its order is the docs' order.
var kinds = [...]Kind{
	{
		Type: TypeKeyEnrolled, Carries: FieldStore | FieldKey, Requires: FieldStore | FieldKey,
		Signers:   SignedByHQ,
		Help:      "HQ enrols a store's public key (loopcard store enrol)",
		FieldsDoc: "`store`, `key` (the store's Ed25519 verifier key)",
	},
	{
		Type: TypeBatchIssued, Carries: FieldBatch | FieldEvent | FieldCount | FieldRoot, Requires: FieldBatch | FieldEvent | FieldCount | FieldRoot,
		MinCount: 1, Signers: SignedByHQ,
		Help:      "HQ issues a complete, personalized batch (loopcard handover issue)",
		FieldsDoc: "`batch`, `event`, `count`, `root` (RFC 6962 Merkle root of the card numbers `B-SSSSS` in slot order)",
	},
	{
		Type: TypeHandedOver, Carries: FieldBatch | FieldStore | FieldCount | FieldCard, Requires: FieldBatch | FieldStore | FieldCount,
		MinCount: 1, Signers: SignedByHQ,
		Help:      "HQ hands cards of a batch to a store (loopcard handover send)",
		FieldsDoc: "`batch`, `store`, `count`, `card` (optional: the first of the `count` cards handed over, in slot order; without it, a count of cards)",
	},
	{
		Type: TypeReceived, Carries: FieldBatch | FieldStore | FieldCount, Requires: FieldBatch | FieldStore | FieldCount,
		Signers: SignedByStore, StoreRoute: RouteReceipts,
		Help:      "a store counted the cards of a handover on receipt (loopcard handover receive)",
		FieldsDoc: "`batch`, `store`, `count` as the store counted it (a different count is a discrepancy, kept as counted)",
	},
	{
		Type: TypeCardSold, Carries: FieldStore | FieldCard, Requires: FieldStore | FieldCard,
		Signers: SignedByStore, StoreRoute: RouteCardEvents,
		CLI: "sold", Help: "a store sold cards",
		move: &cardMove{from: []cardState{inStock}, to: sold},
	},
	{
		Type: TypeCardReturned, Carries: FieldStore | FieldCard, Requires: FieldStore | FieldCard,
		Signers: SignedByStore, StoreRoute: RouteCardEvents,
		CLI: "returned", Help: "sold cards were given back to a store and retired",
		move: &cardMove{from: []cardState{sold}, to: returned},
	},
	{
		// A store voids and destroys only cards it holds (Checker: the
		// entry names the signer's store; Tally: the store holds one).
		Type: TypeCardVoided, Carries: FieldStore | FieldCard, Requires: FieldCard,
		Signers: SignedByHQ | SignedByStore, StoreRoute: RouteCardEvents,
		CLI: "voided", Help: "cards were voided where they are",
		FieldsDoc: "`card`, `store` (empty: at HQ)",
		move:      &cardMove{from: []cardState{inStock, sold, returned}, to: voided},
	},
	{
		Type: TypeCardDestroyed, Carries: FieldStore | FieldCard, Requires: FieldCard,
		Signers: SignedByHQ | SignedByStore, StoreRoute: RouteCardEvents,
		CLI: "destroyed", Help: "cards were destroyed where they are",
		FieldsDoc: "`card`, `store` (empty: at HQ)",
		move:      &cardMove{from: []cardState{inStock, sold, returned, voided}, to: destroyed},
	},
	{
		Type: TypeSeal, Carries: FieldCovers | FieldHash, Requires: FieldCovers | FieldHash,
		Signers:   SignedByAnyone,
		Help:      "its signer signs the unsigned entries right before it, with one signature",
		FieldsDoc: "`covers`, `hash`: signs the `covers` unsigned entries right before it",
	},
}

// kindByType indexes kinds.
var kindByType = func() map[Type]*Kind {
	m := make(map[Type]*Kind, len(kinds))
	for i := range kinds {
		m[kinds[i].Type] = &kinds[i]
	}
	return m
}()

// kindOf returns the kind of t, or nil for an unknown type.
func kindOf(t Type) *Kind { return kindByType[t] }

// Kinds returns the table of entry types, in the docs' order.
func Kinds() []Kind { return append([]Kind(nil), kinds[:]...) }

// KindOf returns the kind of t; ok is false for an unknown type.
func KindOf(t Type) (k Kind, ok bool) {
	if p := kindOf(t); p != nil {
		return *p, true
	}
	return Kind{}, false
}

// KindsTable returns the Markdown table of entry types that
// docs/audit-export.md holds (TestDocsKindsTable keeps the two equal).
func KindsTable() string {
	var b strings.Builder
	b.WriteString("| entry `type` | signed by | fields | a store records it through | what it records |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, k := range kinds {
		fields := k.FieldsDoc
		if fields == "" {
			names := k.Carries.Names()
			for i, n := range names {
				names[i] = "`" + n + "`"
			}
			fields = strings.Join(names, ", ")
		}
		route := "—"
		if k.StoreRoute != "" {
			route = "`" + k.StoreRoute + "`"
		}
		help := k.Help
		if k.CLI != "" {
			help += " (loopcard handover card " + k.CLI + ")"
		}
		b.WriteString("| `" + string(k.Type) + "` | " + k.Signers.String() + " | " + fields + " | " + route + " | " + help + " |\n")
	}
	return b.String()
}
