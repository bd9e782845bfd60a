package api

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/ledger/terminaltx"
)

// PIN attempt limits.
const (
	// MaxPINFailures is how many wrong PINs lock a card.
	MaxPINFailures = 5
	// PINLockBase is the first lock; each further lock doubles it, up to
	// PINLockMax.
	PINLockBase = 15 * time.Minute
	PINLockMax  = 24 * time.Hour
)

// checkPIN verifies a cardholder PIN against the card's verification value
// in the HSM, within the card's attempt budget. An attempt is taken from
// the budget before the HSM is asked, so concurrent guesses cannot exceed
// it; a right PIN gives the budget back.
func (s *Server) checkPIN(c *call, card cardRow, pinText string) error {
	pin, err := keys.ParsePIN(pinText)
	if err != nil {
		// Not a PIN at all: refused without using an attempt.
		return apiError(400, "a PIN is 6 digits", nil)
	}
	defer pin.Destroy()
	now := s.now()
	if _, err := s.pool.Exec(c.ctx, `INSERT INTO api_pin_attempts (org_id, card_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		card.org, card.uid); err != nil {
		return fmt.Errorf("api: PIN attempts: %w", err)
	}
	// Take an attempt: allowed while unlocked with failures left, or once
	// a lock has ended (then only one attempt before the next, longer lock).
	var failures int
	err = s.pool.QueryRow(c.ctx, `UPDATE api_pin_attempts SET
			failures = CASE WHEN locked_until IS NOT NULL THEN $4 ELSE failures + 1 END,
			locked_until = NULL
		WHERE org_id = $1 AND card_id = $2 AND
			((locked_until IS NULL AND failures < $4) OR (locked_until IS NOT NULL AND locked_until <= $3))
		RETURNING failures`, card.org, card.uid, now, MaxPINFailures).Scan(&failures)
	if errors.Is(err, pgx.ErrNoRows) {
		s.metrics.Inc("pin_locked")
		c.detail = "card locked after too many wrong PINs"
		return errCardLocked
	}
	if err != nil {
		return fmt.Errorf("api: PIN attempts: %w", err)
	}
	verr := s.hsm.VerifyPIN(c.ctx, card.uid, pin, card.pvv)
	// The outcome is recorded even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 5*time.Second)
	defer cancel()
	if verr == nil {
		if _, err := s.pool.Exec(ctx, `UPDATE api_pin_attempts SET failures = 0, locks = 0, locked_until = NULL
			WHERE org_id = $1 AND card_id = $2`, card.org, card.uid); err != nil {
			return fmt.Errorf("api: PIN attempts: %w", err)
		}
		return nil
	}
	if !errors.Is(verr, keys.ErrPINMismatch) {
		// The HSM failed: give the attempt back.
		_, _ = s.pool.Exec(ctx, `UPDATE api_pin_attempts SET failures = greatest(failures - 1, 0) WHERE org_id = $1 AND card_id = $2`, card.org, card.uid)
		return fmt.Errorf("api: verify PIN: %w", verr)
	}
	s.metrics.Inc("pin_failure")
	if failures >= MaxPINFailures {
		// One statement: a lock is never half set.
		var until time.Time
		if err := s.pool.QueryRow(ctx, `UPDATE api_pin_attempts SET locks = locks + 1,
				locked_until = $3::timestamptz + make_interval(secs => least($4::float8 * power(2, locks), $5::float8))
			WHERE org_id = $1 AND card_id = $2 RETURNING locked_until`,
			card.org, card.uid, now, PINLockBase.Seconds(), PINLockMax.Seconds()).Scan(&until); err != nil {
			return fmt.Errorf("api: PIN attempts: %w", err)
		}
		c.detail = fmt.Sprintf("wrong PIN; card locked until %s", until.UTC().Format(time.RFC3339))
	} else {
		c.detail = fmt.Sprintf("wrong PIN (%d of %d)", failures, MaxPINFailures)
	}
	if n, alert := s.pinWarn.failure(c.ip, terminaltx.CardHex(card.uid), now); alert {
		s.raiseAlert(c, "pin_failures", fmt.Sprintf("PIN failures on %d cards from one client within 10 minutes", n))
	}
	return errWrongPIN
}
