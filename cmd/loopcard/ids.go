package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/ledger"
	"github.com/loopcard/loopcard/personalize/batch"
)

// Every id a command is given is checked against what exists before the
// command writes anything; an unknown one gets a one-line error that names
// the command creating it.

// hintUnknown adds to an unknown-id error of the ledger the command that
// creates the organizer, event, merchant or store; other errors pass.
func hintUnknown(err error) error {
	var ue *ledger.UnknownError
	if !errors.As(err, &ue) {
		return err
	}
	org := ""
	if ue.Org != 1 {
		org = fmt.Sprintf(" --organizer %d", ue.Org)
	}
	if ue.Kind == "organizer" {
		return fmt.Errorf("%w: add it with 'loopcard ledger init --organizer %d --name NAME'", err, ue.Org)
	}
	return fmt.Errorf("%w: add it with 'loopcard ledger %s%s --%s %s --name NAME'", err, ue.Kind, org, ue.Kind, ue.ID)
}

// checkStore returns nil when the organizer's ledger has the store.
func checkStore(ctx context.Context, l *ledger.Ledger, org int64, store string) error {
	return hintUnknown(l.CheckStore(ctx, org, store))
}

// checkEvent returns nil when the organizer's ledger has the event.
func checkEvent(ctx context.Context, l *ledger.Ledger, org int64, event string) error {
	return hintUnknown(l.CheckEvent(ctx, org, event))
}

// checkBatch returns the batch, or an error saying how batches are made.
func checkBatch(ctx context.Context, store *batch.Batches, org, no int64) (batch.Batch, error) {
	b, err := store.Get(ctx, org, no)
	if errors.Is(err, batch.ErrNotFound) {
		return b, fmt.Errorf("%w: create one with 'loopcard batch create --event EVENT --count N' ('loopcard batch list' shows them)", err)
	}
	return b, err
}
