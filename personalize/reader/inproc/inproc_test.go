package inproc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/reader"
	"github.com/loopcard/loopcard/personalize/reader/inproc"
	"github.com/loopcard/loopcard/personalize/vcard"
)

func newCard(t *testing.T, last byte) *vcard.Card {
	t.Helper()
	c, err := vcard.New(vcard.Options{UID: []byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, last}})
	require.NoError(t, err)
	return c
}

func wait(t *testing.T, r reader.Reader) reader.Card {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := r.WaitForCard(ctx)
	require.NoError(t, err)
	return c
}

func uid(t *testing.T, c reader.Card) byte {
	t.Helper()
	u, err := c.UID()
	require.NoError(t, err)
	require.Len(t, u, 7)
	return u[6]
}

var getVersion = []byte{0x90, 0x60, 0x00, 0x00, 0x00}
var moreFrames = []byte{0x90, 0xAF, 0x00, 0x00, 0x00}

func TestQueue(t *testing.T) {
	r := inproc.New(inproc.Options{Name: "bench"})
	t.Cleanup(func() { r.Close() })
	require.Equal(t, "bench", r.Name())
	r.Present(newCard(t, 1), newCard(t, 2))

	c1 := wait(t, r)
	require.Equal(t, byte(1), uid(t, c1))
	// The card stays in the field until it is removed.
	require.Equal(t, byte(1), uid(t, wait(t, r)))

	removed := make(chan error, 1)
	go func() { removed <- c1.WaitForRemoval(context.Background()) }()
	r.Remove()
	require.NoError(t, <-removed)
	_, err := c1.Transmit(getVersion)
	require.ErrorIs(t, err, reader.ErrRemoved)

	c2 := wait(t, r)
	require.Equal(t, byte(2), uid(t, c2))
	r.Remove()
	r.Remove() // an empty field: nothing happens
	_, err = c2.UID()
	require.ErrorIs(t, err, reader.ErrRemoved)
}

func TestWaitBlocksUntilPresented(t *testing.T) {
	r := inproc.New(inproc.Options{})
	t.Cleanup(func() { r.Close() })
	require.Equal(t, "inproc", r.Name())

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.WaitForCard(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan reader.Card, 1)
	go func() {
		c, err := r.WaitForCard(context.Background())
		if err == nil {
			got <- c
		}
		close(got)
	}()
	time.Sleep(20 * time.Millisecond)
	r.Present(newCard(t, 7))
	select {
	case c := <-got:
		require.NotNil(t, c)
		require.Equal(t, byte(7), uid(t, c))
	case <-time.After(5 * time.Second):
		t.Fatal("WaitForCard did not see the card")
	}
}

func TestTearAfter(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		answers int // GetVersion frames answered before the tear
	}{
		{"before the first frame", 0, 0},
		{"after the first frame", 1, 1},
		{"after two frames", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := inproc.New(inproc.Options{})
			t.Cleanup(func() { r.Close() })
			card := newCard(t, 3)
			r.Present(card)
			c := wait(t, r)
			r.TearAfter(tt.n)
			cmds := [][]byte{getVersion, moreFrames, moreFrames}
			for i, cmd := range cmds {
				resp, err := c.Transmit(cmd)
				if i < tt.answers {
					require.NoError(t, err, "frame %d", i)
					require.Equal(t, []byte{0x91, 0xAF}, resp[len(resp)-2:])
					continue
				}
				require.ErrorIs(t, err, reader.ErrRemoved, "frame %d", i)
			}
			require.NoError(t, c.WaitForRemoval(context.Background()), "the torn card left the field")

			// Put back, the card has forgotten the exchange under way.
			r.Present(card)
			c = wait(t, r)
			resp, err := c.Transmit(moreFrames)
			require.NoError(t, err)
			require.Equal(t, []byte{0x91, 0x1C}, resp, "illegal command: no chain after the tear")
		})
	}
}

func TestHolderLeaves(t *testing.T) {
	r := inproc.New(inproc.Options{HolderLeaves: true})
	t.Cleanup(func() { r.Close() })
	r.Present(newCard(t, 1), newCard(t, 2))
	for want := byte(1); want <= 2; want++ {
		c := wait(t, r)
		require.Equal(t, want, uid(t, c))
		require.NoError(t, c.Close())
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		require.NoError(t, c.WaitForRemoval(ctx))
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.WaitForCard(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the queue is empty")
}

func TestClose(t *testing.T) {
	r := inproc.New(inproc.Options{})
	r.Present(newCard(t, 1))
	c := wait(t, r)
	require.NoError(t, c.Close())
	_, err := c.Transmit(getVersion)
	require.ErrorIs(t, err, reader.ErrClosed)

	c = wait(t, r)
	waiting := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		waiting <- c.WaitForRemoval(ctx)
	}()
	require.NoError(t, r.Close())
	require.NoError(t, <-waiting, "closing the reader takes the card out")
	_, err = r.WaitForCard(context.Background())
	require.ErrorIs(t, err, reader.ErrClosed)
	require.NoError(t, r.Close(), "idempotent")
}

// The DESFire client runs over the reader's Card unchanged.
func TestDESFireClient(t *testing.T) {
	r := inproc.New(inproc.Options{})
	t.Cleanup(func() { r.Close() })
	r.Present(newCard(t, 9))
	d := desfire.New(wait(t, r))
	v, err := d.GetVersion()
	require.NoError(t, err)
	require.Equal(t, [7]byte{0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 9}, v.UID)
}
