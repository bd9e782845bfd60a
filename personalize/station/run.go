package station

import (
	"context"
	"errors"
	"fmt"

	"github.com/loopcard/loopcard/personalize/batch"
	"github.com/loopcard/loopcard/personalize/reader"
)

// Event is reported after every card, finished or not.
type Event struct {
	Result
	// Err is why the card was not finished; nil when it was.
	Err error `json:"-"`
	// Error is Err's text, for JSON.
	Error string `json:"error,omitempty"`
	// Done and Count are the batch's progress after this card.
	Done  int `json:"done"`
	Count int `json:"count"`
}

// Run personalizes cards from r until the batch is complete or ctx ends.
// After each card it calls report, then waits until the card has left the
// field. Cards that cannot be finished (foreign, torn, of another batch,
// mismatching) are reported and skipped; failures of the HSM, the database
// or the label spool stop the run.
func (s *Station) Run(ctx context.Context, r reader.Reader, report func(Event)) error {
	done, count := s.cfg.Batch.Done, s.cfg.Batch.Count
	if report == nil {
		report = func(Event) {}
	}
	for done < count {
		card, err := r.WaitForCard(ctx)
		if err != nil {
			return fmt.Errorf("station: wait for a card on %s: %w", r.Name(), err)
		}
		res, err := s.Personalize(ctx, card)
		if err != nil && ctx.Err() != nil {
			card.Close()
			return fmt.Errorf("station: %w", ctx.Err())
		}
		if res.Done > 0 {
			// Other stations may work on the batch too.
			done = res.Done
		}
		if res.Complete {
			done = count
		}
		ev := Event{Result: res, Err: err, Done: done, Count: count}
		if err != nil {
			ev.Error = err.Error()
		}
		report(ev)
		if err != nil && !cardProblem(err) {
			card.Close()
			if errors.Is(err, batch.ErrFull) {
				return nil
			}
			return err
		}
		if err := card.WaitForRemoval(ctx); err != nil && !errors.Is(err, reader.ErrRemoved) {
			card.Close()
			return fmt.Errorf("station: wait for the card to be removed: %w", err)
		}
		card.Close()
	}
	return nil
}

// cardProblem tells errors that concern the card in the field, after which
// the station goes on with the next card.
func cardProblem(err error) bool {
	for _, e := range []error{ErrForeign, ErrTorn, ErrOtherBatch, ErrMismatch, reader.ErrRemoved} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
