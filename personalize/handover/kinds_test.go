package handover_test

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/handover"
	ht "github.com/loopcard/loopcard/personalize/handover/internal/handovertest"
)

var update = flag.Bool("update", false, "rewrite the table of entry types in docs/audit-export.md")

// TestDocsKindsTable checks that docs/audit-export.md lists every entry
// type as the table of kinds has it.
func TestDocsKindsTable(t *testing.T) {
	const path = "../../docs/audit-export.md"
	const begin, end = "<!-- begin kinds -->\n", "<!-- end kinds -->\n"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	require.True(t, i >= 0 && j > i, "%s: no %q ... %q section", path, begin, end)
	got, want := doc[i+len(begin):j], handover.KindsTable()
	if *update && got != want {
		require.NoError(t, os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644))
		return
	}
	require.Equal(t, want, got, "%s is out of date: go test ./personalize/handover -run TestDocsKindsTable -update", path)
	for _, k := range handover.Kinds() {
		require.Contains(t, got, "| `"+string(k.Type)+"` |")
	}
}

// TestKinds walks the table: every type makes a valid entry with its
// required fields and no other, refuses one without each required field,
// and the checker lets exactly the signers of the table sign it.
func TestKinds(t *testing.T) {
	hq := ht.Signer(t, "loopcard/handover/org-7")
	north := ht.StoreSigner(t, "north")
	south := ht.StoreSigner(t, "south")
	full := func(typ handover.Type, f handover.Field, store string) handover.Entry {
		e := handover.Entry{V: 1, Type: typ, Org: 7, At: at}
		if f&handover.FieldBatch != 0 {
			e.Batch = 1
		}
		if f&handover.FieldEvent != 0 {
			e.Event = "fest"
		}
		if f&handover.FieldStore != 0 {
			e.Store = store
		}
		if f&handover.FieldCard != 0 {
			e.Card = "1-00001"
		}
		if f&handover.FieldCount != 0 {
			e.Count = handover.N(3)
		}
		if f&handover.FieldRoot != 0 {
			e.Root = handover.MerkleRoot(nil).String()
		}
		if f&handover.FieldKey != 0 {
			e.Key = ht.StoreSigner(t, store).PublicKey().Vkey() // a new key of the store
		}
		if f&handover.FieldCovers != 0 {
			e.Covers = handover.N(1)
		}
		if f&handover.FieldHash != 0 {
			e.Hash = handover.MerkleRoot(nil).String()
		}
		return e
	}
	seen := map[handover.Type]bool{}
	for _, k := range handover.Kinds() {
		t.Run(string(k.Type), func(t *testing.T) {
			require.False(t, seen[k.Type], "listed twice")
			seen[k.Type] = true
			require.Equal(t, k.Requires, k.Requires&k.Carries, "requires what it does not carry")
			require.NotEmpty(t, k.Help)
			require.Equal(t, k.CardEvent(), k.CLI != "", "card events, and only they, have a CLI name")
			require.Equal(t, k.CardEvent(), k.Type.CardEvent())
			if k.StoreRoute != "" {
				require.NotZero(t, k.Signers&handover.SignedByStore, "a store route for a type a store may not sign")
			}
			// With every carried field, and with only the required ones.
			for _, f := range []handover.Field{k.Carries, k.Requires} {
				e := full(k.Type, f, "north")
				e.Signer = hq.ID()
				require.NoError(t, e.Validate(), "fields %v", f.Names())
			}
			for _, name := range k.Requires.Names() {
				var f handover.Field
				for _, x := range []handover.Field{handover.FieldBatch, handover.FieldEvent, handover.FieldStore, handover.FieldCard,
					handover.FieldCount, handover.FieldRoot, handover.FieldKey, handover.FieldCovers, handover.FieldHash} {
					if x.Names()[0] == name {
						f = x
					}
				}
				e := full(k.Type, k.Requires&^f, "north")
				e.Signer = hq.ID()
				require.ErrorContains(t, e.Validate(), name+" missing")
			}
			all := handover.Field(1<<9 - 1)
			if extra := all &^ k.Carries; extra != 0 {
				e := full(k.Type, k.Carries|extra, "north")
				e.Signer = hq.ID()
				require.ErrorContains(t, e.Validate(), "not allowed")
			}
			if k.Type == handover.TypeSeal {
				return // a seal's signer is checked against the entries it covers
			}
			// Who may sign it: HQ; the store named; another store.
			for _, s := range []struct {
				who    string
				signer *handover.Signer
				ok     bool
			}{
				{"HQ", hq, k.Signers&(handover.SignedByHQ|handover.SignedByAnyone) != 0},
				{"the store named", north, k.Signers&(handover.SignedByStore|handover.SignedByAnyone) != 0},
				{"another store", south, k.Signers&handover.SignedByAnyone != 0},
			} {
				e := full(k.Type, k.Carries, "north")
				if k.Carries&handover.FieldStore == 0 && s.signer != hq {
					continue // no store is named
				}
				require.NoError(t, s.signer.SignEntry(&e))
				c := handover.NewChecker(hq.PublicKey(), 0)
				c.AddStoreKey("north", north.PublicKey())
				c.AddStoreKey("south", south.PublicKey())
				b, err := e.Marshal()
				require.NoError(t, err)
				_, err = c.Add(e, tlogRecordHash(b))
				if s.ok {
					require.NoError(t, err, "%s signs %s", s.who, k.Type)
				} else {
					require.ErrorIs(t, err, handover.ErrNotAllowed, "%s signs %s", s.who, k.Type)
				}
			}
		})
	}
	_, ok := handover.KindOf("card_lost")
	require.False(t, ok)
}

// TestStoreDestroysThroughItsRoute records the decision between the
// store route and the checker: a store may record card_destroyed for a
// card it holds, through the card-events route, as it may card_voided.
func TestStoreDestroysThroughItsRoute(t *testing.T) {
	for _, typ := range []handover.Type{handover.TypeCardSold, handover.TypeCardReturned, handover.TypeCardVoided, handover.TypeCardDestroyed} {
		k, ok := handover.KindOf(typ)
		require.True(t, ok)
		require.Equal(t, handover.RouteCardEvents, k.StoreRoute, "%s", typ)
	}
	for _, typ := range []handover.Type{handover.TypeKeyEnrolled, handover.TypeBatchIssued, handover.TypeHandedOver, handover.TypeSeal} {
		k, _ := handover.KindOf(typ)
		require.Empty(t, k.StoreRoute, "%s", typ)
	}
	k, _ := handover.KindOf(handover.TypeReceived)
	require.Equal(t, handover.RouteReceipts, k.StoreRoute)
}
