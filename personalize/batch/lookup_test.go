package batch_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize"
	"github.com/loopcard/loopcard/personalize/batch"
)

func TestCardLookups(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b, err := s.Create(ctx, 7, "ev", 2, personalize.DefaultLayout())
	require.NoError(t, err)
	r, err := s.Reserve(ctx, 7, b.No, uid(1))
	require.NoError(t, err)
	_, err = s.Reserve(ctx, 7, b.No, uid(2))
	require.NoError(t, err)
	f := finished(1)
	_, err = s.Finish(ctx, 7, b.No, r.Slot, uid(1), f)
	require.NoError(t, err)

	tc, err := s.CardByTokenHash(ctx, f.TokenHash)
	require.NoError(t, err)
	require.Equal(t, batch.TokenCard{Org: 7, UID: uid(1), PVVKeyVersion: f.PVVKeyVersion, PVV: f.PVV}, tc)
	_, err = s.CardByTokenHash(ctx, finished(2).TokenHash)
	require.ErrorIs(t, err, batch.ErrNotFound, "an unknown token")

	k, err := s.CardKeys(ctx, 7, uid(1))
	require.NoError(t, err)
	require.Equal(t, batch.CardKeys{Layout: personalize.DefaultLayout(), KeyVersions: f.KeyVersions, Event: "ev"}, k)
	_, err = s.CardKeys(ctx, 7, uid(2))
	require.ErrorIs(t, err, batch.ErrNotFound, "a reserved card is not finished")
	_, err = s.CardKeys(ctx, 8, uid(1))
	require.ErrorIs(t, err, batch.ErrNotFound, "another organizer's card")
}
