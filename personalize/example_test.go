package personalize_test

import (
	"fmt"

	"github.com/loopcard/loopcard/personalize"
)

// An organizer's layout names only what differs from the default: here its
// own AID and system identifier and a lower balance limit.
func ExampleParseLayout() {
	l, err := personalize.ParseLayout([]byte(`{
		"aid": "F1E2D3",
		"system_id": "FESTIVAL-2026",
		"balance": {"no": 2, "kind": "value", "comm": "full", "upper": 30000,
		            "access": {"read": 1, "write": 1, "read_write": 2, "change": 0}}
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	debit, _ := l.Key(personalize.RoleDebit)
	fmt.Println(l.AID, l.SystemID, l.Balance.Upper, debit.No, debit.Base)
	// Output: F1E2D3 FESTIVAL-2026 30000 1 app-debit
}

func ExampleNewCardID() {
	id, _ := personalize.NewCardID(12, 42)
	fmt.Println(id, uint64(id))
	// Output: 12-00042 1200042
}
