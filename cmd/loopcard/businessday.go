package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
)

// Business days (issue 19): `loopcard ledger business-day` sets the
// organizer's time zone and day-end hour (audited, cliaudit.go); `loopcard
// ledger settings` shows them with the organizer's other settings.

func ledgerBusinessDayCommand() *cli.Command {
	return &cli.Command{
		Name: "business-day",
		Usage: "set when the organizer's day ends: at --day-end-hour o'clock in --time-zone (default 06:00 UTC); " +
			"store days, their closes and the reports count by it",
		Flags: []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "time-zone", Required: true, Usage: "IANA time zone, such as Europe/Amsterdam"},
			&cli.IntFlag{Name: "day-end-hour", Value: ledger.DefaultDayEndHour, Usage: "the hour (0 to 23) at which a business day ends"}},
		Action: func(c *cli.Context) error {
			org, zone, hour := c.Int64("organizer"), c.String("time-zone"), c.Int("day-end-hour")
			return withLedger(c, func(l *ledger.Ledger) error {
				switch err := l.SetBusinessDay(c.Context, org, zone, hour); {
				case errors.Is(err, ledger.ErrInvalid):
					return fmt.Errorf("%w: nothing was changed", err)
				case errors.Is(err, ledger.ErrNotFound):
					return fmt.Errorf("no organizer %d: register it with loopcard ledger init", org)
				case err != nil:
					return err
				}
				bd, err := l.BusinessDay(c.Context, org)
				if err != nil {
					return err
				}
				today := bd.Of(time.Now())
				start, end := bd.Bounds(today)
				if c.Bool("json") {
					return printJSON(c, map[string]any{"time_zone": zone, "day_end_hour": hour, "today": today.Format(time.DateOnly),
						"start": start, "end": end})
				}
				fmt.Fprintf(c.App.Writer, "business days end at %02d:00 %s; today is %s, from %s to %s\n", hour, zone,
					today.Format(time.DateOnly), start.In(bd.Zone).Format("2006-01-02 15:04"), end.In(bd.Zone).Format("2006-01-02 15:04"))
				return nil
			})
		},
	}
}

func ledgerSettingsCommand() *cli.Command {
	return &cli.Command{
		Name:  "settings",
		Usage: "show the organizer's settings: replacement hold, correction threshold, business day",
		Flags: []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			return withLedger(c, func(l *ledger.Ledger) error {
				s, err := l.Settings(c.Context, c.Int64("organizer"))
				if errors.Is(err, ledger.ErrNotFound) {
					return fmt.Errorf("no organizer %d: register it with loopcard ledger init", c.Int64("organizer"))
				}
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c, s)
				}
				w := c.App.Writer
				fmt.Fprintf(w, "organizer %d (%s)\n", s.Org, s.Name)
				fmt.Fprintf(w, "replacement hold:     %s or %d%% of the balance (ledger replacement-hold)\n", money(s.ReplacementHoldCents), s.ReplacementHoldPercent)
				fmt.Fprintf(w, "correction threshold: %s (ledger correction-threshold)\n", money(s.CorrectionApprovalAbove))
				fmt.Fprintf(w, "business day:         ends at %02d:00 %s (ledger business-day)\n", s.DayEndHour, s.TimeZone)
				return nil
			})
		},
	}
}

// businessDayFlag parses a YYYY-MM-DD flag; unset, it is the organizer's
// business day now.
func businessDayFlag(c *cli.Context, l *ledger.Ledger, flag string) (time.Time, error) {
	if s := c.String(flag); s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("--%s: want YYYY-MM-DD", flag)
		}
		return d, nil
	}
	bd, err := l.BusinessDay(c.Context, c.Int64("organizer"))
	if errors.Is(err, ledger.ErrNotFound) {
		return time.Time{}, fmt.Errorf("no organizer %d: register it with loopcard ledger init", c.Int64("organizer"))
	}
	if err != nil {
		return time.Time{}, err
	}
	return bd.Of(time.Now()), nil
}
