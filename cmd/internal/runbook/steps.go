package runbook

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/loopcard/loopcard/personalize/reader/pcscd"
)

// waitLong bounds a step's wait for a command's answer.
const waitLong = 60 * time.Second

func (r *runner) path(parts ...string) string {
	return filepath.Join(append([]string{r.dir}, parts...)...)
}

func (r *runner) start(ctx context.Context) error {
	port, err := freePorts(3)
	if err != nil {
		return err
	}
	r.readerPort = port
	rd, err := r.background(ctx, "reader", "reader", "serve", "--port", strconv.Itoa(port), "--dir", r.path("reader"))
	if err != nil {
		return err
	}
	if _, err := rd.waitFor(ctx, "PCSCLITE_CSOCK_NAME=", waitLong); err != nil {
		return err
	}
	// This process watches the slots too, to swap cards as a hand does.
	sock := r.path("reader", "pcscd.comm")
	if err := os.Setenv("PCSCLITE_CSOCK_NAME", sock); err != nil {
		return err
	}
	r.env = append(r.env, "PCSCLITE_CSOCK_NAME="+sock)
	r.readers = [2]string{"vpcd 00 00", "vpcd 00 01"}
	r.readerNames = [2]string{pcscd.FriendlyName + " 00 00", pcscd.FriendlyName + " 00 01"}
	r.say("   a private pcscd with a vpcd reader: slot %q takes cards on port %d, slot %q on port %d", r.readers[0], port, r.readers[1], port+1)

	var created struct {
		Created []struct {
			Label string `json:"label"`
			Type  string `json:"type"`
			KCV   string `json:"kcv"`
		} `json:"created"`
	}
	if err := r.loopcardJSON(ctx, &created, "keys", "init"); err != nil {
		return err
	}
	var keys []KeyLine
	if err := r.loopcardJSON(ctx, &keys, "keys", "list"); err != nil {
		return err
	}
	r.sum.Keys = keys
	r.say("   %d keys made inside the HSM, none extractable; only their check values leave it", len(keys))

	apiPort := port + 2
	srv, err := r.background(ctx, "serve", "serve", "--listen", "127.0.0.1:"+strconv.Itoa(apiPort), "--test-payments")
	if err != nil {
		return err
	}
	if _, err := srv.waitFor(ctx, "loopcard: serving https://", waitLong); err != nil {
		return err
	}
	r.apiURL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	r.caFile = r.path("tls", "ca.pem")
	r.sum.API = r.apiURL
	r.sum.Files["api_ca"] = r.caFile
	r.env = append(r.env, "LOOPCARD_URL="+r.apiURL, "LOOPCARD_CA="+r.caFile)
	r.say("   the API serves %s (clients trust %s), with the local test payment provider", r.apiURL, r.caFile)
	return nil
}

func (r *runner) setup(ctx context.Context) error {
	// A fresh organizer: the first id the database does not have yet.
	for org := int64(1); ; org++ {
		_, err := r.loopcard(ctx, "ledger", "init", "--organizer", strconv.FormatInt(org, 10), "--name", "Summer Fest Ltd")
		if err == nil {
			r.org = org
			break
		}
		if org >= 100 || !strings.Contains(err.Error(), "exists") {
			return err
		}
	}
	r.sum.Organizer = r.org
	orgFlag := []string{"--organizer", strconv.FormatInt(r.org, 10)}
	deadline := time.Now().AddDate(0, 1, 0).UTC().Format(time.RFC3339)
	if _, err := r.loopcard(ctx, append([]string{"ledger", "event", "--event", Event, "--name", "Summer Fest", "--refund-deadline", deadline}, orgFlag...)...); err != nil {
		return err
	}
	for _, m := range []string{Bar, Food} {
		if _, err := r.loopcard(ctx, append([]string{"ledger", "merchant", "--merchant", m, "--name", m}, orgFlag...)...); err != nil {
			return err
		}
	}
	for _, s := range []string{StoreN, StoreS} {
		if _, err := r.loopcard(ctx, append([]string{"ledger", "store", "--store", s, "--name", s}, orgFlag...)...); err != nil {
			return err
		}
	}
	r.say("   organizer %d, event %s, merchants %s and %s, stores %s and %s", r.org, Event, Bar, Food, StoreN, StoreS)
	return nil
}

func (r *runner) orgFlag() []string { return []string{"--organizer", strconv.FormatInt(r.org, 10)} }

// issueToken issues a staff token and keeps it in a new 0600 file, which
// the clients read.
func (r *runner) issueToken(ctx context.Context, file string, args ...string) error {
	out, err := r.loopcard(ctx, append(append([]string{"token", "issue"}, args...), r.orgFlag()...)...)
	if err != nil {
		return err
	}
	return os.WriteFile(file, []byte(strings.TrimSpace(out)+"\n"), 0o600)
}

func (r *runner) personalize(ctx context.Context) error {
	n := r.cfg.Cards
	var b struct {
		No int64 `json:"batch"`
	}
	if err := r.loopcardJSON(ctx, &b, append([]string{"batch", "create", "--event", Event, "--count", strconv.Itoa(n)}, r.orgFlag()...)...); err != nil {
		return err
	}
	r.batch = b.No
	r.sum.Batch = b.No
	csvPath, pdfPath := r.path("out", fmt.Sprintf("labels-batch-%d.csv", b.No)), r.path("out", fmt.Sprintf("labels-batch-%d.pdf", b.No))
	st, err := r.background(ctx, "personalize", append([]string{"personalize", "--batch", strconv.FormatInt(b.No, 10),
		"--reader", r.readers[0], "--csv", csvPath, "--labels", pdfPath, "--public-url", r.apiURL + "/c/", "--json"}, r.orgFlag()...)...)
	if err != nil {
		return err
	}
	r.say("   the station waits at %q; each blank card is presented with `loopcard vcard`, personalized and taken away", r.readers[0])
	for i := range n {
		c := &card{state: r.path("cards", fmt.Sprintf("card-%02d.json", i+1))}
		vc, err := r.present(ctx, c, 0)
		if err != nil {
			return err
		}
		if _, err := st.waitFor(ctx, fmt.Sprintf(`"done":%d,`, i+1), waitLong); err != nil {
			return err
		}
		if err := r.remove(vc); err != nil {
			return err
		}
		r.cards = append(r.cards, c)
		if (i+1)%5 == 0 || i+1 == n {
			r.say("   ... %d/%d cards personalized", i+1, n)
		}
	}
	if err := st.wait(ctx, waitLong); err != nil {
		return err
	}
	// Match the cards to their labels: the station's report gives each
	// card's UID and number, the label file its token and PIN.
	byUID := map[string]string{}
	for _, line := range strings.Split(st.stdout(), "\n") {
		var ev struct {
			Type, UID string
			Number    string `json:"card_number"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "card" && ev.Number != "" {
			byUID[strings.ToUpper(ev.UID)] = ev.Number
		}
	}
	labels, err := readLabels(csvPath)
	if err != nil {
		return err
	}
	for _, c := range r.cards {
		c.number = byUID[c.uid]
		l, ok := labels[c.number]
		if c.number == "" || !ok {
			return fmt.Errorf("card %s has no label", c.uid)
		}
		c.token, c.pin = l.token, l.pin
	}
	// In slot order (numbers are zero-padded within a batch), so that
	// each store's cards are one run to hand over.
	slices.SortFunc(r.cards, func(a, b *card) int { return strings.Compare(a.number, b.number) })
	var info struct {
		Done  int `json:"done"`
		Count int `json:"count"`
	}
	if err := r.loopcardJSON(ctx, &info, append(append([]string{"batch", "show"}, r.orgFlag()...), strconv.FormatInt(b.No, 10))...); err != nil {
		return err
	}
	r.sum.CardsIssued, r.sum.CardsRecorded = info.Count, info.Done
	r.sum.Files["labels_pdf"], r.sum.Files["labels_csv"] = pdfPath, csvPath
	r.sum.Files["cards"] = r.path("cards")
	r.say("   batch %d: %d issued, %d recorded by the station and registered in the ledger", b.No, info.Count, info.Done)
	r.say("   labels (QR code + PIN, the only place a PIN exists in clear): %s", pdfPath)
	return nil
}

type label struct{ token, pin string }

// readLabels reads the label CSV: card number, URL (ending in the token),
// PIN.
func readLabels(path string) (map[string]label, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	out := map[string]label{}
	for _, row := range rows[1:] {
		if len(row) != 3 {
			return nil, fmt.Errorf("labels: a row of %d fields", len(row))
		}
		out[row[0]] = label{token: row[1][strings.LastIndexByte(row[1], '/')+1:], pin: row[2]}
	}
	return out, nil
}

// present puts a card into a reader slot with `loopcard vcard` and waits
// until pcscd sees it there; remove takes it out again. pcscd sometimes
// misses a virtual card that arrives right after another left (vpcd polls):
// then the card is taken out and presented again, as a person would.
func (r *runner) present(ctx context.Context, c *card, slot int) (*inSlot, error) {
	var err error
	for range 3 {
		var in *inSlot
		if in, err = r.presentOnce(ctx, c, slot); err == nil {
			return in, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
	}
	return nil, err
}

func (r *runner) presentOnce(ctx context.Context, c *card, slot int) (*inSlot, error) {
	p, err := r.background(ctx, "vcard "+filepath.Base(c.state), "vcard", "--port", strconv.Itoa(r.readerPort+slot), "--state", c.state)
	if err != nil {
		return nil, err
	}
	in := &inSlot{p: p, reader: r.readerNames[slot]}
	ready, err := p.waitFor(ctx, "virtual card ready", waitLong)
	if err == nil {
		if i := strings.Index(ready, "uid="); i >= 0 && c.uid == "" {
			c.uid = strings.ToUpper(strings.Fields(ready[i+4:])[0])
		}
		_, err = p.waitFor(ctx, "card inserted", waitLong)
	}
	if err == nil {
		err = pcscd.WaitPresence(in.reader, true)
	}
	if err != nil {
		return nil, errors.Join(err, r.remove(in))
	}
	return in, nil
}

// inSlot is a card in a reader slot.
type inSlot struct {
	p      *proc
	reader string
}

// remove takes the card out of its slot and waits until pcscd sees the slot
// empty, so that the next card is not taken for this one.
func (r *runner) remove(in *inSlot) error {
	return errors.Join(in.p.stop(), pcscd.WaitPresence(in.reader, false))
}

// writeJSON writes v to a new file, indented.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
