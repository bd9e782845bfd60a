package vcard

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// traceRand copies the random bytes the card draws into its trace.
type traceRand struct {
	r io.Reader
	w io.Writer
}

func (t traceRand) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		fmt.Fprintf(t.w, "rand %X\n", p[:n])
	}
	return n, err
}

// Step is one line of a transcript: a power-on, a command APDU and the
// card's response, or random bytes the card drew.
type Step struct {
	PowerOn  bool
	Command  []byte
	Response []byte
	Rand     []byte
}

// Transcript is an exchange recorded with Options.Trace.
type Transcript struct {
	Steps []Step
}

// Rand is every random byte of the transcript, in order: the Options.Rand
// that makes a card draw the same randoms again.
func (t Transcript) Rand() []byte {
	var b []byte
	for _, s := range t.Steps {
		b = append(b, s.Rand...)
	}
	return b
}

// ReadTranscript parses a transcript: lines "power on", "> APDU",
// "< RESPONSE" (hex) and "rand HEX"; blank lines and lines starting with
// '#' are comments. A "<" line completes the ">" line before it.
func ReadTranscript(r io.Reader) (Transcript, error) {
	var t Transcript
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	line, last := 0, -1 // last: the command awaiting its response
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		bad := func(err error) error { return fmt.Errorf("vcard: transcript line %d: %w", line, err) }
		if s == "power on" {
			t.Steps = append(t.Steps, Step{PowerOn: true})
			continue
		}
		tag, hx, ok := strings.Cut(s, " ")
		if !ok {
			return t, bad(fmt.Errorf("no data"))
		}
		b, err := hex.DecodeString(strings.ReplaceAll(hx, " ", ""))
		if err != nil {
			return t, bad(err)
		}
		switch tag {
		case ">":
			if last >= 0 {
				return t, bad(fmt.Errorf("command without a response before it"))
			}
			last = len(t.Steps)
			t.Steps = append(t.Steps, Step{Command: b})
		case "<":
			if last < 0 {
				return t, bad(fmt.Errorf("response without a command"))
			}
			t.Steps[last].Response, last = b, -1
		case "rand":
			t.Steps = append(t.Steps, Step{Rand: b})
		default:
			return t, bad(fmt.Errorf("unknown tag %q", tag))
		}
	}
	return t, sc.Err()
}

// ParseTranscript is ReadTranscript of b.
func ParseTranscript(b []byte) (Transcript, error) { return ReadTranscript(bytes.NewReader(b)) }
