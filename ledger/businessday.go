package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // the same zones wherever the ledger runs, beside PostgreSQL's own

	"github.com/jackc/pgx/v5"
)

// Business days: a festival night ends at 06:00 local time, not at
// midnight UTC. Each organizer has a time zone and a day-end hour
// (organizers.time_zone, organizers.day_end_hour; default UTC and 6); store
// days, their closes and the reports count by them.

// DefaultDayEndHour is the day-end hour of an organizer that set none.
const DefaultDayEndHour = 6

// BusinessDay is an organizer's day: it ends at EndHour o'clock in Zone.
// The business day of an instant t is the local date of t - EndHour hours
// in Zone (the SQL of the reports computes the same:
// ((t - EndHour hours) AT TIME ZONE zone)::date).
type BusinessDay struct {
	Zone    *time.Location
	EndHour int
}

// Of returns the business day of t as midnight UTC of its date.
func (b BusinessDay) Of(t time.Time) time.Time {
	l := t.Add(-time.Duration(b.EndHour) * time.Hour).In(b.zone())
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, time.UTC)
}

// Bounds returns when the business day of day's date starts (inclusive)
// and ends (exclusive): its local midnight and the next, each plus EndHour
// hours (elapsed, not on the clock). So the night the clocks go forward
// ends an hour later on the clock (07:00 for EndHour 6) and the next day
// is 23 hours long; the night they go back ends an hour earlier and the
// next day is 25 hours long.
func (b BusinessDay) Bounds(day time.Time) (start, end time.Time) {
	y, m, d := day.Date()
	h := time.Duration(b.EndHour) * time.Hour
	return time.Date(y, m, d, 0, 0, 0, 0, b.zone()).Add(h).UTC(), time.Date(y, m, d+1, 0, 0, 0, 0, b.zone()).Add(h).UTC()
}

// ZoneName is the zone's IANA name.
func (b BusinessDay) ZoneName() string { return b.zone().String() }

func (b BusinessDay) zone() *time.Location {
	if b.Zone == nil {
		return time.UTC
	}
	return b.Zone
}

// BusinessDay returns the organizer's business day. It fails with
// ErrNotFound for an unknown organizer.
func (l *Ledger) BusinessDay(ctx context.Context, org int64) (BusinessDay, error) {
	return businessDay(ctx, l.pool, org)
}

func businessDay(ctx context.Context, q queryRower, org int64) (BusinessDay, error) {
	var zone string
	var hour int
	err := q.QueryRow(ctx, `SELECT time_zone, day_end_hour FROM organizers WHERE org_id = $1`, org).Scan(&zone, &hour)
	if errors.Is(err, pgx.ErrNoRows) {
		return BusinessDay{}, fmt.Errorf("ledger: business day: %w: organizer %d", ErrNotFound, org)
	}
	if err != nil {
		return BusinessDay{}, fmt.Errorf("ledger: business day: %w", err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return BusinessDay{}, fmt.Errorf("ledger: business day: organizer %d's time zone %q: %w", org, zone, err)
	}
	return BusinessDay{Zone: loc, EndHour: hour}, nil
}

// SetBusinessDay sets the organizer's time zone (an IANA name such as
// Europe/Amsterdam, known to Go and to PostgreSQL) and day-end hour
// (0..23). It fails with ErrInvalid for a bad zone or hour and ErrNotFound
// for an unknown organizer. Days closed before keep the cash they counted.
func (l *Ledger) SetBusinessDay(ctx context.Context, org int64, zone string, endHour int) error {
	if endHour < 0 || endHour > 23 {
		return fmt.Errorf("%w: the day-end hour is 0 to 23", ErrInvalid)
	}
	if err := validZone(ctx, l.pool, zone); err != nil {
		return err
	}
	tag, err := l.pool.Exec(ctx, `UPDATE organizers SET time_zone = $2, day_end_hour = $3 WHERE org_id = $1`, org, zone, endHour)
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("%w: organizer %d", ErrNotFound, org)
	}
	if err != nil {
		return fmt.Errorf("ledger: business day: %w", err)
	}
	return nil
}

// validZone fails with ErrInvalid unless zone is an IANA zone name that
// both Go and PostgreSQL know.
func validZone(ctx context.Context, q queryRower, zone string) error {
	bad := fmt.Errorf("%w: the time zone is an IANA name such as Europe/Amsterdam or UTC", ErrInvalid)
	if zone == "" || zone == "Local" || len(zone) > 64 {
		return bad
	}
	for _, r := range zone {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '_' || r == '-' || r == '+') {
			return bad
		}
	}
	if _, err := time.LoadLocation(zone); err != nil {
		return bad
	}
	var known bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)`, zone).Scan(&known); err != nil {
		return fmt.Errorf("ledger: time zone: %w", err)
	}
	if !known {
		return bad
	}
	return nil
}

// OrganizerSettings are the organizer's settings that HQ sets with
// `loopcard ledger ...` commands.
type OrganizerSettings struct {
	Org                     int64  `json:"organizer"`
	Name                    string `json:"name"`
	ReplacementHoldCents    int64  `json:"replacement_hold_cents"`
	ReplacementHoldPercent  int    `json:"replacement_hold_percent"`
	CorrectionApprovalAbove int64  `json:"correction_approval_above"`
	TimeZone                string `json:"time_zone"`
	DayEndHour              int    `json:"day_end_hour"`
}

// Settings returns the organizer's settings; ErrNotFound for an unknown
// organizer.
func (l *Ledger) Settings(ctx context.Context, org int64) (OrganizerSettings, error) {
	s := OrganizerSettings{Org: org}
	err := l.pool.QueryRow(ctx, `SELECT name, replacement_hold_cents, replacement_hold_percent, correction_approval_above,
		time_zone, day_end_hour FROM organizers WHERE org_id = $1`, org).
		Scan(&s.Name, &s.ReplacementHoldCents, &s.ReplacementHoldPercent, &s.CorrectionApprovalAbove, &s.TimeZone, &s.DayEndHour)
	if errors.Is(err, pgx.ErrNoRows) {
		return OrganizerSettings{}, fmt.Errorf("ledger: settings: %w: organizer %d", ErrNotFound, org)
	}
	if err != nil {
		return OrganizerSettings{}, fmt.Errorf("ledger: settings: %w", err)
	}
	return s, nil
}
