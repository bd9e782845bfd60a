package ledger

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err means the database server went away or
// does not take writes now: a lost connection, a server shutting down or
// starting, a standby (read-only) where the primary was, as during a
// pg_auto_failover failover. Whether the transaction committed is then
// unknown unless the error came before COMMIT was sent; an operation
// that is idempotent (terminal transactions by id, loads by their
// Idempotency-Key, payments by their reference) may be run again, and
// runs once.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now (starting, or in recovery)
			"25006": // read_only_sql_transaction: a standby
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	// A network failure counts only when it came through pgconn (whose
	// errors say whether they are safe to retry): an unexpected EOF of a
	// JSON body, or a payment provider that does not answer, is no failover.
	var fromPG interface{ SafeToRetry() bool }
	if !errors.As(err, &fromPG) {
		return false
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && !ne.Timeout():
		return true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true
	}
	return false
}
