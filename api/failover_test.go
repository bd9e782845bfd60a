package api

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLostDatabase: a bare EOF from a statement whose server died is a lost
// database (the handler runs again); a malformed body's EOF is the
// client's 400 and is not.
func TestLostDatabase(t *testing.T) {
	require.True(t, lostDatabase(fmt.Errorf("api: record read key: %w", io.ErrUnexpectedEOF)))
	require.True(t, lostDatabase(fmt.Errorf("ledger: upload: %w", io.EOF)))
	require.False(t, lostDatabase(badRequest("malformed JSON body", io.ErrUnexpectedEOF)))
	require.False(t, lostDatabase(errors.New("api: wrap key: bad public key")))
	require.False(t, lostDatabase(nil))
}
