package main

import (
	"errors"
	"fmt"
	"os/user"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// HQ's review of card alerts: `loopcard ledger review` and `loopcard
// ledger unblock` (issue 17, M4). The ledger records each with who did it
// and why (card_alert_actions), as the API's routes do.

var reasonFlag = &cli.StringFlag{Name: "reason", Required: true, Usage: "why (1 to 500 characters), recorded with it"}

func ledgerReviewCommand() *cli.Command {
	return &cli.Command{
		Name:   "review",
		Usage:  "review a card alert (see loopcard ledger alerts); a reviewed blocking alert lets its card be unblocked or refunded",
		Flags:  []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}, reasonFlag, &cli.StringFlag{Name: "alert", Required: true, Usage: "alert id"}},
		Action: ledgerReview,
	}
}

func ledgerUnblockCommand() *cli.Command {
	return &cli.Command{
		Name:   "unblock",
		Usage:  "unblock a card whose blocking alerts are all reviewed",
		Flags:  []cli.Flag{organizerFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON"}, reasonFlag, &cli.StringFlag{Name: "card", Required: true, Usage: "card id (hex)"}},
		Action: ledgerUnblock,
	}
}

// alertRow is an alert as `loopcard ledger alerts --json` prints it.
type alertRow struct {
	ID           string    `json:"id"`
	Card         string    `json:"card"`
	Kind         string    `json:"kind"`
	State        string    `json:"state"`
	Blocking     bool      `json:"blocking"`
	Txn          string    `json:"txn"`
	Detail       string    `json:"detail"`
	RaisedAt     time.Time `json:"raised_at"`
	ReviewedBy   string    `json:"reviewed_by,omitempty"`
	ReviewReason string    `json:"review_reason,omitempty"`
}

func newAlertRow(a ledger.Alert) alertRow {
	r := alertRow{ID: a.ID.String(), Card: terminaltx.CardHex(a.Card), Kind: a.Kind, State: a.State(), Blocking: a.Blocking,
		Txn: a.Txn.String(), Detail: a.Detail, RaisedAt: a.RaisedAt}
	if a.Review != nil {
		r.ReviewedBy, r.ReviewReason = a.Review.By, a.Review.Reason
	}
	return r
}

// cliActor names whoever runs the command in the ledger's record.
func cliActor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

func ledgerReview(c *cli.Context) error {
	var u pgtype.UUID
	if err := u.Scan(c.String("alert")); err != nil || !u.Valid {
		return fmt.Errorf("--alert: want an alert id as 'loopcard ledger alerts' lists it")
	}
	id := txid.ID(u.Bytes)
	return withLedger(c, func(l *ledger.Ledger) error {
		a, err := l.ReviewAlert(c.Context, c.Int64("organizer"), id, cliActor(), c.String("reason"))
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			return fmt.Errorf("no alert %s of organizer %d: 'loopcard ledger alerts' lists them", id, c.Int64("organizer"))
		case errors.Is(err, ledger.ErrExists):
			return fmt.Errorf("alert %s was reviewed before: nothing was changed", id)
		case errors.Is(err, ledger.ErrInvalid):
			return fmt.Errorf("--reason: 1 to 500 characters of printable text")
		case err != nil:
			return err
		}
		if c.Bool("json") {
			return printJSON(c, newAlertRow(a))
		}
		next := ""
		if a.Blocking {
			next = fmt.Sprintf("; unblock the card with 'loopcard ledger unblock --card %s --reason ...', or let its holder ask for a refund", terminaltx.CardHex(a.Card))
		}
		fmt.Fprintf(c.App.Writer, "alert %s (%s, card %s) reviewed%s\n", id, a.Kind, terminaltx.CardHex(a.Card), next)
		return nil
	})
}

func ledgerUnblock(c *cli.Context) error {
	card, err := terminaltx.ParseCardHex(c.String("card"))
	if err != nil {
		return fmt.Errorf("--card: want the card id in hex, as 'loopcard ledger alerts' lists it")
	}
	return withLedger(c, func(l *ledger.Ledger) error {
		err := l.UnblockCard(c.Context, c.Int64("organizer"), card, cliActor(), c.String("reason"))
		switch {
		case errors.Is(err, ledger.ErrNotReviewed):
			return fmt.Errorf("%w: review it first with 'loopcard ledger review --alert ID --reason ...'", err)
		case errors.Is(err, ledger.ErrConflict):
			return fmt.Errorf("card %s is not blocked: nothing was changed", terminaltx.CardHex(card))
		case errors.Is(err, ledger.ErrNotFound):
			return fmt.Errorf("no card %s of organizer %d", terminaltx.CardHex(card), c.Int64("organizer"))
		case errors.Is(err, ledger.ErrInvalid):
			return fmt.Errorf("--reason: 1 to 500 characters of printable text")
		case err != nil:
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]string{"card": terminaltx.CardHex(card), "status": "active"})
		}
		fmt.Fprintf(c.App.Writer, "card %s unblocked\n", terminaltx.CardHex(card))
		return nil
	})
}
