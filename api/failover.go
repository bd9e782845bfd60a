package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/loopcard/loopcard/ledger"
)

// errDatabaseUnavailable answers a request the database could not serve
// because it went away (a failover in progress): the client sends it
// again, with the same idempotency key or transaction ids.
var errDatabaseUnavailable = apiError(http.StatusServiceUnavailable, "database unavailable (failover in progress?): send the request again", nil)

// rideFailover runs the route's handler, and runs it again while the
// database is unavailable (ledger.Unavailable: a lost connection, a
// standby where the primary was) and nothing has been answered yet, within
// the request's time limit, on routes whose handler records each thing
// once however often it runs (route.rerun, money routes, GETs). A
// pg_auto_failover failover takes a few seconds; the pool's multi-host URL
// (target_session_attrs=read-write) finds the new primary. The handler's
// error is returned as it is when the database is fine: the cost on the
// hot path is one branch.
func (s *Server) rideFailover(c *call) error {
	err := c.route.h(c)
	if err == nil {
		return nil
	}
	rt := c.route
	rerun := rt.rerun || rt.money || rt.method == "GET"
	if !lostDatabase(err) {
		return s.timedOut(c, rerun, err)
	}
	if !rerun {
		return s.unavailable(err)
	}
	for wait := 50 * time.Millisecond; lostDatabase(err) && c.status == 0; wait = min(2*wait, time.Second) {
		s.metrics.Inc("db_unavailable_retry")
		s.dropConnections()
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return s.unavailable(err)
		case <-t.C:
		}
		c.target, c.detail = "", ""
		err = rt.h(c)
	}
	if lostDatabase(err) {
		return s.unavailable(err)
	}
	return s.timedOut(c, rerun, err)
}

// lostDatabase reports an error of a database that went away: what
// ledger.Unavailable says, and a bare unexpected EOF. pgx returns the
// latter as it is when the server dies while a statement's answer is on
// the way (seen in TestFailover: "api: record read key: unexpected EOF").
// A request body's EOF never reaches here bare: the body is read before
// the handler, and a malformed one is a 400 (*Error).
func lostDatabase(err error) bool {
	if ledger.Unavailable(err) {
		return true
	}
	var client *Error
	return (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) && !errors.As(err, &client)
}

// timedOut answers a request of a route that may be sent again, which ran
// out of its time limit in the database (a pool waiting for a new primary
// that took longer than the request may), as unavailable: the client sends
// it again rather than take a 500 for a failover.
func (s *Server) timedOut(c *call, rerun bool, err error) error {
	if rerun && c.status == 0 && c.ctx.Err() != nil && errors.Is(err, c.ctx.Err()) {
		return s.unavailable(err)
	}
	return err
}

func (s *Server) unavailable(err error) error {
	e := *errDatabaseUnavailable
	e.Err = err
	return &e
}

// dropConnections closes the pool's connections, at most once a second: after
// a failover every idle connection leads to the lost server, and each would
// fail one try.
func (s *Server) dropConnections() {
	now := time.Now().UnixNano()
	last := s.lastReset.Load()
	if now-last < int64(time.Second) || !s.lastReset.CompareAndSwap(last, now) {
		return
	}
	s.pool.Reset()
}

// dbState is what /healthz reports of the database.
type dbState struct {
	lastWrite atomic.Int64 // unix nanoseconds of the last successful write request; 0: none yet
	lastReset atomic.Int64 // unix nanoseconds of the last pool reset
}

// wrote records a successful request that wrote.
func (s *Server) wrote(rt *route) {
	if rt.method != "GET" {
		s.lastWrite.Store(s.now().UnixNano())
	}
}

// healthzBody is GET /healthz's answer.
type healthzBody struct {
	Status string `json:"status"`
	// Role is the database server's role: "primary" (takes writes),
	// "standby" (read-only: a failover is under way or the URL names no
	// primary) or "unknown" (no answer).
	Role string `json:"db_role"`
	// SinceLastWrite is the seconds since this server's last successful
	// write request; absent when it wrote nothing since it started.
	SinceLastWrite *float64 `json:"seconds_since_last_write,omitempty"`
}

func (s *Server) healthz(c *call) error {
	body := healthzBody{Status: "ok", Role: "unknown"}
	if t := s.lastWrite.Load(); t != 0 {
		d := s.now().Sub(time.Unix(0, t)).Seconds()
		body.SinceLastWrite = &d
	}
	ctx, cancel := context.WithTimeout(c.ctx, 3*time.Second)
	defer cancel()
	var standby bool
	if err := s.pool.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		s.log.Warn("api: healthz: database unavailable", "err", err)
		body.Status = "database unavailable"
		c.w.Header().Set("Retry-After", "1")
		return c.reply(http.StatusServiceUnavailable, body)
	}
	if standby {
		body.Role = "standby"
	} else {
		body.Role = "primary"
	}
	return c.reply(http.StatusOK, body)
}
