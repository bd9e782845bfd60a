package terminal_test

import (
	"context"
	"testing"
	"time"

	"github.com/loopcard/loopcard/api"
	"github.com/loopcard/loopcard/api/terminal"
	"github.com/stretchr/testify/require"
)

// Two organizers each run an event called "fest" on one platform (one HSM,
// one key hierarchy). A terminal of organizer 1 cannot debit a card of
// organizer 2 (issue 17 M2): its session key is organizer 1's event debit
// key, and organizer 2's cards carry key 1 diversified from organizer 2's.
// Before the event debit key bound the organizer, both keys were equal and
// the debit went through on the card.
func TestTerminalCannotDebitAnotherOrganizersCard(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, 1, "")
	const org2 = 2
	s := w.stack
	require.NoError(t, s.Ledger.CreateOrganizer(ctx, org2, "Other Org"))
	require.NoError(t, s.Ledger.AddEvent(ctx, org2, "fest", "Other Fest", time.Time{}))
	require.NoError(t, s.Ledger.AddMerchant(ctx, org2, "bar", "Other Bar"))
	require.NoError(t, s.Ledger.AddStore(ctx, org2, "store-a", "Other Store"))
	hq2, err := s.StaffToken(ctx, org2, api.RoleHQ, "")
	require.NoError(t, err)
	store2, err := s.StaffToken(ctx, org2, api.RoleStore, "store-a")
	require.NoError(t, err)
	is, err := s.IssueCards(ctx, org2, "fest", 1, t.TempDir(), "", nil)
	require.NoError(t, err)
	card2 := is.Cards[0]
	st, err := s.CashLoad(ctx, org2, store2, "store-a", card2, 1000)
	require.NoError(t, err)
	require.Equal(t, terminal.State{Balance: 1000, Seq: 1}, st)

	term1 := w.terminal(t, "bar-1", t.TempDir())
	_, err = term1.Debit(card2.Field(), 400)
	require.Error(t, err, "organizer 1's terminal debited organizer 2's card")

	// The card is untouched, and its own organizer's terminal still debits it.
	term2, err := s.AddTerminal(ctx, hq2, org2, "bar-1", s.TerminalConfig(t.TempDir(), "fest", "bar"))
	require.NoError(t, err)
	t.Cleanup(func() { term2.Close() })
	signed, err := term2.Debit(card2.Field(), 400)
	require.NoError(t, err)
	require.Equal(t, int64(1000), signed.BalanceBefore)
	require.Equal(t, uint32(2), signed.CardSeq)

	// And organizer 1's own card still works with organizer 1's terminal.
	_, err = term1.Debit(w.cards[0].Field(), 100)
	require.NoError(t, err)
}
