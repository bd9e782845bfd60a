package vcard

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
)

// Options configures a Card.
type Options struct {
	// UID is the 7-byte card UID, starting with 0x04 (NXP). Empty means
	// 04 followed by six random bytes.
	UID []byte
	// RandomUID makes the card answer with a fresh 4-byte random UID (08 xx xx
	// xx) on each power-on, as after SetConfiguration with the random UID
	// option. The real UID stays readable with GetCardUID.
	RandomUID bool
	// Rand is the source of the card's random numbers (RndB, TI, random
	// UIDs). nil means crypto/rand. Tests inject fixed bytes here.
	Rand io.Reader
	// StatePath, when set, is a file that holds the card between runs. It is
	// read by New when it exists and rewritten atomically (mode 0600) after
	// every committed change. It holds the card keys in clear: tests and
	// demos only.
	StatePath string
	// Logger receives debug lines about commands (never key material).
	// nil discards.
	Logger *slog.Logger
	// Trace, when set, receives the exchange as a transcript (see
	// ReadTranscript): every command and response APDU, every power-on and
	// every random byte the card draws, so that the exchange can be replayed
	// byte for byte. It shows card data and cryptograms: tests only.
	Trace io.Writer
}

// ErrOptions is returned by New for invalid options.
var ErrOptions = errors.New("vcard: invalid options")

// atr is the PC/SC ATR of a contactless ISO 14443-4 card whose ATS (the
// factory ATS of DESFire, 06 75 77 81 02 80) has one historical byte, 80:
// 3B 81 80 01, the historical bytes, TCK.
var atr = []byte{0x3B, 0x81, 0x80, 0x01, 0x80, 0x80}

// atrFor is the ATR a PC/SC reader builds from an ATS (PC/SC part 3,
// 3.1.3.2.3.1): 3B 8n 80 01, the n historical bytes of the ATS, TCK (the
// XOR of every byte after 3B).
func atrFor(ats []byte) []byte {
	hist, ok := historicalBytes(ats)
	if !ok || len(hist) > 15 {
		return slices.Clone(atr)
	}
	out := []byte{0x3B, 0x80 | byte(len(hist)), 0x80, 0x01}
	out = append(out, hist...)
	var tck byte
	for _, b := range out[1:] {
		tck ^= b
	}
	return append(out, tck)
}

// maxFrame is the number of response data bytes the card sends per frame;
// longer responses continue with status AF.
const maxFrame = 59

// Card is a virtual DESFire EV2. It is safe for concurrent use.
type Card struct {
	mu        sync.Mutex
	log       *slog.Logger
	rand      io.Reader
	statePath string
	trace     io.Writer

	p       *picc
	powered bool
	// uid is the UID the reader sees in this power cycle.
	uid []byte
	// atr is the ATR of this power cycle.
	atr []byte

	sel       *app  // nil: PICC level
	ef        *byte // ISO current EF: a file number of sel, nil for none
	isoAuth   *isoAuth
	auth      *authState
	authStep  *authPending
	chain     *chain
	out       []byte // response data still to send after AF
	outStatus byte
	changed   bool // persistent state changed by the current command
	curCmd    byte // command code being executed
	// splits is an optional frame layout for the current response.
	splits []int
}

// New returns a powered, blank card (or the card restored from
// opts.StatePath).
func New(opts Options) (*Card, error) {
	c := &Card{log: opts.Logger, rand: opts.Rand, statePath: opts.StatePath, trace: opts.Trace}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.trace != nil {
		c.rand = traceRand{r: c.rand, w: c.trace}
	}
	uid := opts.UID
	switch {
	case len(uid) == 0:
		uid = make([]byte, 7)
		uid[0] = 0x04
		if _, err := io.ReadFull(c.rand, uid[1:]); err != nil {
			return nil, fmt.Errorf("vcard: random UID: %w", err)
		}
	case len(uid) != 7 || uid[0] != 0x04:
		return nil, fmt.Errorf("%w: UID must be 7 bytes starting with 04", ErrOptions)
	}
	c.p = newPICC(uid)
	c.p.randomUID = opts.RandomUID
	if c.statePath != "" {
		p, err := loadState(c.statePath)
		switch {
		case err == nil:
			c.p = p
		case !errors.Is(err, errNoState):
			return nil, err
		}
	}
	c.PowerOn()
	return c, nil
}

// ATR returns the card's answer to reset as PC/SC reports it: from the
// ATS SetConfiguration option 02 set, once the card has been powered on
// again, else the factory one.
func (c *Card) ATR() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.atr)
}

// UID returns the UID the reader sees: the card UID, or this power cycle's
// random UID when random UID is on.
func (c *Card) UID() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.uid)
}

// PowerOn brings the card into the field: PICC level selected, not
// authenticated. A new random UID is drawn when random UID is on.
func (c *Card) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
	c.powered = true
	c.uid = slices.Clone(c.p.uid)
	c.atr = slices.Clone(atr)
	if c.p.ats != nil {
		c.atr = atrFor(c.p.ats)
	}
	if c.trace != nil {
		fmt.Fprintf(c.trace, "power on\n")
	}
	if c.p.randomUID {
		r := make([]byte, 4)
		if _, err := io.ReadFull(c.rand, r[1:]); err != nil {
			c.log.Warn("vcard: random UID", "err", err)
		}
		r[0] = 0x08
		c.uid = r
	}
}

// PowerOff takes the card out of the field (a tear): the open transaction is
// lost, authentication is lost and the PICC level is selected again.
func (c *Card) PowerOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
	c.powered = false
}

// reset drops all volatile state.
func (c *Card) reset() {
	c.abortTransaction()
	c.sel = nil
	c.ef = nil
	c.isoAuth = nil
	c.auth = nil
	c.authStep = nil
	c.chain = nil
	c.out = nil
	c.splits = nil
}

// ISO 7816-4 status words.
var (
	swOK              = []byte{0x90, 0x00}
	swWrongLength     = []byte{0x67, 0x00}
	swWrongP1P2       = []byte{0x6A, 0x86}
	swFuncNotSupp     = []byte{0x6A, 0x81}
	swINSNotSupported = []byte{0x6D, 0x00}
	swCLANotSupported = []byte{0x6E, 0x00}
	swNoInfo          = []byte{0x6F, 0x00}
	swNoCard          = []byte{0x64, 0x00}
)

// Transmit processes one command APDU and returns the response APDU (data,
// SW1, SW2). It never panics: an internal failure answers 6F 00.
func (c *Card) Transmit(apdu []byte) (resp []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trace != nil {
		fmt.Fprintf(c.trace, "> %X\n", apdu)
		defer func() { fmt.Fprintf(c.trace, "< %X\n", resp) }()
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("vcard: internal error", "panic", fmt.Sprint(r))
			c.reset()
			resp = slices.Clone(swNoInfo)
		}
	}()
	if !c.powered {
		return slices.Clone(swNoCard)
	}
	if len(apdu) < 4 {
		return slices.Clone(swWrongLength)
	}
	cla, ins, p1, p2 := apdu[0], apdu[1], apdu[2], apdu[3]
	data, ok := parseBody(apdu[4:])
	if !ok {
		return slices.Clone(swWrongLength)
	}
	switch cla {
	case 0xFF: // reader pseudo-APDUs
		if ins != 0xCA {
			return slices.Clone(swINSNotSupported)
		}
		if p1 != 0 || p2 != 0 {
			return slices.Clone(swFuncNotSupp)
		}
		return append(slices.Clone(c.uid), swOK...)
	case 0x90: // ISO 7816-4 wrapped native command
		if p1 != 0 || p2 != 0 {
			return slices.Clone(swWrongP1P2)
		}
		status, out := c.native(ins, data)
		c.log.Debug("vcard command", "cmd", ins, "lc", len(data), "status", status, "resp_len", len(out))
		c.persist()
		return append(out, 0x91, status)
	case 0x00:
		out, sw := c.iso(ins, p1, p2, data, isoLe(apdu[4:]))
		c.log.Debug("vcard iso command", "ins", ins, "lc", len(data), "sw", sw, "resp_len", len(out))
		c.persist()
		return append(out, sw...)
	}
	return slices.Clone(swCLANotSupported)
}

// parseBody splits the part of a short APDU after the header into its data
// field, accepting the four ISO 7816-4 cases. Extended lengths are refused.
func parseBody(b []byte) ([]byte, bool) {
	switch {
	case len(b) == 0, len(b) == 1: // case 1, case 2 (Le only)
		return nil, true
	case b[0] == 0:
		return nil, false
	case len(b) == 1+int(b[0]), len(b) == 2+int(b[0]): // case 3, case 4
		return b[1 : 1+int(b[0])], true
	}
	return nil, false
}

// native runs one native command frame and returns status and data.
func (c *Card) native(cmd byte, data []byte) (byte, []byte) {
	c.changed = false
	if cmd == cmdAdditionalFrame {
		switch {
		case c.out != nil:
			return c.nextFrame()
		case c.authStep != nil:
			return c.finish(c.authContinue(data))
		case c.chain != nil:
			ch := c.chain
			ch.body = append(ch.body, data...)
			if len(ch.body) < ch.want {
				return stAdditionalFrame, nil
			}
			c.chain = nil
			return c.finish(c.execute(ch.cmd, ch.spec, ch.hdr, ch.body))
		}
		return c.finish(stIllegalCommand, nil)
	}
	// A new command abandons any unfinished exchange.
	c.isoAuth = nil
	if c.authStep != nil {
		c.authStep = nil
		c.auth = nil
	}
	c.chain = nil
	c.out = nil
	c.splits = nil
	switch cmd {
	case cmdAuthLegacy, cmdAuthISO, cmdAuthAES, cmdAuthEV2First, cmdAuthEV2NonFirst:
		return c.finish(c.authStart(cmd, data))
	}
	s, ok := commands[cmd]
	if !ok {
		return c.finish(stIllegalCommand, nil)
	}
	if len(data) < s.hdr {
		return c.finish(stLengthError, nil)
	}
	hdr, body := data[:s.hdr], data[s.hdr:]
	if s.want != nil {
		want, st := s.want(c, hdr)
		if st != stOK {
			return c.finish(st, nil)
		}
		if len(body) < want {
			c.chain = &chain{cmd: cmd, spec: s, hdr: slices.Clone(hdr), body: slices.Clone(body), want: want}
			return stAdditionalFrame, nil
		}
	}
	return c.finish(c.execute(cmd, s, hdr, body))
}

// chain collects a command's data over several frames.
type chain struct {
	cmd       byte
	spec      *spec
	hdr, body []byte
	want      int
}

// finish applies the error rules and splits long responses into frames.
func (c *Card) finish(status byte, data []byte) (byte, []byte) {
	switch status {
	case stOK, stNoChanges:
	case stAdditionalFrame:
		return status, data
	default:
		// Every error ends the authentication; no data is sent.
		c.auth = nil
		c.authStep = nil
		c.changed = false
		return status, nil
	}
	split := maxFrame
	if len(c.splits) > 0 {
		split = c.splits[0]
		c.splits = c.splits[1:]
	}
	if len(data) <= split {
		c.splits = nil
		return status, data
	}
	c.out = data[split:]
	c.outStatus = status
	return stAdditionalFrame, slices.Clone(data[:split])
}

// nextFrame sends the next part of a long response.
func (c *Card) nextFrame() (byte, []byte) {
	data, status := c.out, c.outStatus
	c.out = nil
	return c.finish(status, data)
}

// persist writes the state file after a command that changed it.
func (c *Card) persist() {
	if !c.changed || c.statePath == "" {
		return
	}
	c.changed = false
	if err := saveState(c.statePath, c.p); err != nil {
		c.log.Error("vcard: saving state", "err", err)
	}
}
