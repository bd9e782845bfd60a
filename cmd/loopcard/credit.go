package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/ledger/terminaltx"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Corrections and vouchers at HQ (issue 21): `loopcard ledger correct`,
// `approve-correction`, `corrections`, `correction-threshold`, `vouchers`
// and `credit`. Each that changes something is audited (cliaudit.go), and
// the ledger records who asked for and who approved a correction: the
// operator (--operator, else $USER), so that the second person is another
// operator.

func ledgerCreditCommands() []*cli.Command {
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return []*cli.Command{
		{
			Name:  "correct",
			Usage: "correct a posted payment: charged back to its merchant, credited to its card as a load; above the threshold a second person approves it",
			Flags: []cli.Flag{organizerFlag, jsonFlag, reasonFlag,
				&cli.StringFlag{Name: "payment", Required: true, Usage: "the payment's transaction id"},
				&cli.Int64Flag{Name: "amount", Required: true, Usage: "amount to give back, in cents"}},
			Action: ledgerCorrect,
		},
		{
			Name:   "approve-correction",
			Usage:  "approve a correction awaiting approval (another operator than who asked for it), which posts it",
			Flags:  []cli.Flag{organizerFlag, jsonFlag, &cli.StringFlag{Name: "correction", Required: true, Usage: "correction id"}},
			Action: ledgerApproveCorrection,
		},
		{
			Name:   "corrections",
			Usage:  "list corrections, those awaiting approval first",
			Flags:  []cli.Flag{organizerFlag, jsonFlag},
			Action: ledgerCorrections,
		},
		{
			Name:  "correction-threshold",
			Usage: "set the amount above which a correction needs a second person's approval (0: every one does)",
			Flags: []cli.Flag{organizerFlag, jsonFlag,
				&cli.Int64Flag{Name: "above", Required: true, Usage: "amount in cents"}},
			Action: ledgerCorrectionThreshold,
		},
		{
			Name:  "vouchers",
			Usage: "issue a batch of single-use vouchers for an event; the codes are written once, to --out, and never shown again",
			Flags: []cli.Flag{organizerFlag, jsonFlag,
				&cli.StringFlag{Name: "event", Required: true, Usage: "event id"},
				&cli.Int64Flag{Name: "amount", Required: true, Usage: "each voucher's value in cents"},
				&cli.IntFlag{Name: "count", Required: true, Usage: fmt.Sprintf("how many (1 to %d)", ledger.MaxVoucherBatch)},
				&cli.TimestampFlag{Name: "expires", Required: true, Layout: time.RFC3339, Usage: "when they expire (RFC 3339)"},
				&cli.StringFlag{Name: "label", Usage: "what they are for (staff drinks, welcome credit)"},
				&cli.StringFlag{Name: "out", Required: true, Usage: "write the codes, one a line, to this new file (mode 0600)"}},
			Action: ledgerVouchers,
		},
		{
			Name:   "credit",
			Usage:  "a card's credit by kind: refundable (money paid in) and non-refundable (vouchers, comps)",
			Flags:  []cli.Flag{organizerFlag, jsonFlag, &cli.StringFlag{Name: "card", Required: true, Usage: "card id (hex)"}},
			Action: ledgerCredit,
		},
	}
}

// correctionRow is a correction as `--json` prints it.
type correctionRow struct {
	ID          string     `json:"id"`
	Payment     string     `json:"payment"`
	Card        string     `json:"card"`
	Merchant    string     `json:"merchant"`
	Amount      int64      `json:"amount"`
	Reason      string     `json:"reason"`
	Status      string     `json:"status"`
	RequestedBy string     `json:"requested_by"`
	RequestedAt time.Time  `json:"requested_at"`
	ApprovedBy  string     `json:"approved_by,omitempty"`
	PostedAt    *time.Time `json:"posted_at,omitempty"`
}

func newCorrectionRow(c ledger.Correction) correctionRow {
	return correctionRow{ID: c.ID.String(), Payment: c.Payment.String(), Card: terminaltx.CardHex(c.Card), Merchant: c.Merchant,
		Amount: c.Amount, Reason: c.Reason, Status: c.Status, RequestedBy: c.RequestedBy, RequestedAt: c.RequestedAt,
		ApprovedBy: c.ApprovedBy, PostedAt: c.PostedAt}
}

func parseID(flag, s, hint string) (txid.ID, error) {
	var u pgtype.UUID
	if err := u.Scan(s); err != nil || !u.Valid {
		return txid.ID{}, fmt.Errorf("--%s: want an id as %s", flag, hint)
	}
	return txid.ID(u.Bytes), nil
}

func correctionErr(err error, org int64) error {
	switch {
	case errors.Is(err, ledger.ErrExceedsPayment):
		return fmt.Errorf("%w: nothing was changed; 'loopcard ledger corrections' lists the payment's corrections", err)
	case errors.Is(err, ledger.ErrSameActor):
		return fmt.Errorf("%w: another operator approves it (--operator NAME)", err)
	case errors.Is(err, ledger.ErrNotPosted):
		return fmt.Errorf("%w: there is nothing to correct; review its alert ('loopcard ledger alerts')", err)
	case errors.Is(err, ledger.ErrExists):
		return fmt.Errorf("the correction is posted already: nothing was changed")
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return fmt.Errorf("the merchant's account holds less than the correction: nothing was changed; settle it with the merchant by hand")
	case errors.Is(err, ledger.ErrNotFound):
		return fmt.Errorf("no such payment or correction of organizer %d: 'loopcard ledger corrections' lists corrections", org)
	case errors.Is(err, ledger.ErrInvalid):
		return fmt.Errorf("--amount must be positive and --reason 1 to 500 characters of printable text")
	}
	return err
}

func printCorrection(c *cli.Context, cr ledger.Correction) error {
	if c.Bool("json") {
		return printJSON(c, newCorrectionRow(cr))
	}
	switch cr.Status {
	case ledger.CorrectionPosted:
		fmt.Fprintf(c.App.Writer, "correction %s of %s posted: charged back to %s, a pending load of card %s until its next write\n",
			cr.ID, money(cr.Amount), cr.Merchant, terminaltx.CardHex(cr.Card))
	default:
		fmt.Fprintf(c.App.Writer, "correction %s of %s awaits approval by another operator: loopcard ledger approve-correction --correction %s\n",
			cr.ID, money(cr.Amount), cr.ID)
	}
	return nil
}

func ledgerCorrect(c *cli.Context) error {
	pay, err := parseID("payment", c.String("payment"), "the payment's transaction id (loopcard card history shows it)")
	if err != nil {
		return err
	}
	org := c.Int64("organizer")
	return withLedger(c, func(l *ledger.Ledger) error {
		cr, err := l.RequestCorrection(c.Context, org, ledger.CorrectionRequest{Payment: pay, Amount: c.Int64("amount"),
			Reason: c.String("reason"), Actor: "cli:" + operator(c)})
		if err != nil {
			return correctionErr(err, org)
		}
		return printCorrection(c, cr)
	})
}

func ledgerApproveCorrection(c *cli.Context) error {
	id, err := parseID("correction", c.String("correction"), "'loopcard ledger corrections' lists it")
	if err != nil {
		return err
	}
	org := c.Int64("organizer")
	return withLedger(c, func(l *ledger.Ledger) error {
		cr, err := l.ApproveCorrection(c.Context, org, id, "cli:"+operator(c))
		if err != nil {
			return correctionErr(err, org)
		}
		return printCorrection(c, cr)
	})
}

func ledgerCorrections(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		list, err := l.Corrections(c.Context, c.Int64("organizer"))
		if err != nil {
			return err
		}
		if c.Bool("json") {
			rows := make([]correctionRow, 0, len(list))
			for _, cr := range list {
				rows = append(rows, newCorrectionRow(cr))
			}
			return printJSON(c, rows)
		}
		for _, cr := range list {
			fmt.Fprintf(c.App.Writer, "%s  %-17s  %10s  payment %s  by %s  %s\n", cr.ID, cr.Status, money(cr.Amount), cr.Payment, cr.RequestedBy, cr.Reason)
		}
		return nil
	})
}

func ledgerCorrectionThreshold(c *cli.Context) error {
	return withLedger(c, func(l *ledger.Ledger) error {
		if err := l.SetCorrectionThreshold(c.Context, c.Int64("organizer"), c.Int64("above")); err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				return fmt.Errorf("no organizer %d: register it with loopcard ledger init", c.Int64("organizer"))
			}
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]int64{"approval_above": c.Int64("above")})
		}
		fmt.Fprintf(c.App.Writer, "corrections above %s need a second person's approval\n", money(c.Int64("above")))
		return nil
	})
}

func ledgerVouchers(c *cli.Context) error {
	out := c.String("out")
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--out: %w (the file must not exist: codes are written once)", err)
	}
	defer f.Close()
	org := c.Int64("organizer")
	return withLedger(c, func(l *ledger.Ledger) error {
		id, codes, err := l.IssueVouchers(c.Context, org, ledger.VoucherBatch{Event: c.String("event"), Amount: c.Int64("amount"),
			Count: c.Int("count"), Expires: *c.Timestamp("expires"), Label: c.String("label"), Actor: "cli:" + operator(c)})
		if err != nil {
			_ = os.Remove(out)
			if errors.Is(err, ledger.ErrNotFound) {
				return hintUnknown(err)
			}
			return err
		}
		var b strings.Builder
		for _, code := range codes {
			b.WriteString(code.Reveal())
			b.WriteByte('\n')
		}
		if _, err := f.WriteString(b.String()); err != nil {
			return fmt.Errorf("vouchers of batch %s were issued but not written (%v): issue a new batch; these codes are lost", id, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("vouchers of batch %s were issued but not written (%v): issue a new batch; these codes are lost", id, err)
		}
		if c.Bool("json") {
			return printJSON(c, map[string]any{"batch": id.String(), "count": len(codes), "amount": c.Int64("amount"), "out": out})
		}
		fmt.Fprintf(c.App.Writer, "%d vouchers of %s (batch %s) written to %s; print them and delete the file\n", len(codes), money(c.Int64("amount")), id, out)
		return nil
	})
}

func ledgerCredit(c *cli.Context) error {
	card, err := terminaltx.ParseCardHex(c.String("card"))
	if err != nil {
		return fmt.Errorf("--card: want the card id in hex")
	}
	return withLedger(c, func(l *ledger.Ledger) error {
		cr, err := l.CardCredit(c.Context, c.Int64("organizer"), card)
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("no card %s of organizer %d", terminaltx.CardHex(card), c.Int64("organizer"))
		}
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c, map[string]int64{"total": cr.Total, "refundable": cr.Refundable(), "non_refundable": cr.NonRefundable,
				"pending_refundable": cr.PendingRefundable, "pending_non_refundable": cr.PendingNonRefundable})
		}
		fmt.Fprintf(c.App.Writer, "credit %s: refundable %s, non-refundable %s; pending %s refundable, %s non-refundable\n",
			money(cr.Total), money(cr.Refundable()), money(cr.NonRefundable), money(cr.PendingRefundable), money(cr.PendingNonRefundable))
		return nil
	})
}
