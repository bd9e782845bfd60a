package station

import (
	"bytes"
	"fmt"

	"github.com/loopcard/loopcard/personalize/labels"
)

// PrintLabels picks from the spool's labels the one label of each recorded
// card: the one whose token hashes to the recorded hash (hashes by card
// number, from batch.Batches.TokenHashes). Labels of cards that were
// relabelled or never recorded are dropped. It returns an error when a
// recorded card has no label, which only a lost or foreign spool explains.
func PrintLabels(spooled []labels.Label, hashes map[string][]byte) ([]labels.Label, error) {
	var out []labels.Label
	for _, l := range spooled {
		if h, ok := hashes[l.Number]; ok && bytes.Equal(h, l.Token.Hash()) {
			out = append(out, l)
		}
	}
	if len(out) != len(hashes) {
		return out, fmt.Errorf("station: %d recorded cards but %d matching labels in the spool: the spool is not this batch's, or was edited", len(hashes), len(out))
	}
	return out, nil
}
