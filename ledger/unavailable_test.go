package ledger

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestUnavailable: the errors of a failover are told from the errors of a
// request, which must not be run again.
func TestUnavailable(t *testing.T) {
	for _, code := range []string{"08006", "08001", "57P01", "57P02", "57P03", "25006"} {
		require.True(t, Unavailable(fmt.Errorf("ledger: x: %w", &pgconn.PgError{Code: code})), code)
	}
	for _, code := range []string{"23505", "40001", "22003", "23514", "42P01"} {
		require.False(t, Unavailable(&pgconn.PgError{Code: code}), code)
	}
	require.False(t, Unavailable(fmt.Errorf("malformed JSON body: %w", io.ErrUnexpectedEOF)), "not from the database")
	require.True(t, Unavailable(pgconn.ErrConnClosed))
	require.False(t, Unavailable(nil))
	require.False(t, Unavailable(ErrInsufficientFunds))
	require.False(t, Unavailable(errors.New("something else")))
}
