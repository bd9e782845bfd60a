package handover

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Version is the entry format version this package writes and reads.
const Version = 1

// Type says what an entry records.
type Type string

// The entry types. Count fields are card counts. Kinds holds what each
// carries and who may sign it.
const (
	// TypeKeyEnrolled: HQ records a store's Ed25519 public key (Store, Key).
	TypeKeyEnrolled Type = "key_enrolled"
	// TypeBatchIssued: HQ issues a personalized batch (Batch, Event, Count,
	// Root: RFC 6962 Merkle root of the card numbers in slot order).
	TypeBatchIssued Type = "batch_issued"
	// TypeHandedOver: HQ hands Count cards of Batch to Store.
	TypeHandedOver Type = "handed_over"
	// TypeReceived: Store counted Count cards of Batch on receipt; a count
	// other than the handover's is a discrepancy, kept as counted.
	TypeReceived Type = "received"
	// TypeCardSold: Store sold Card.
	TypeCardSold Type = "card_sold"
	// TypeCardReturned: Card was given back to Store and retired.
	TypeCardReturned Type = "card_returned"
	// TypeCardVoided: Card was voided where it was (Store, or HQ when empty).
	TypeCardVoided Type = "card_voided"
	// TypeCardDestroyed: Card was destroyed where it was (Store, or HQ).
	TypeCardDestroyed Type = "card_destroyed"
	// TypeSeal: signer signs the Covers entries right before this one, by
	// Hash = SealHash of their leaf hashes.
	TypeSeal Type = "seal"
)

// CardEvent reports whether t is one of the per-card types.
func (t Type) CardEvent() bool {
	k := kindOf(t)
	return k != nil && k.CardEvent()
}

// ErrMalformed: bytes that are not a valid canonical entry.
var ErrMalformed = errors.New("malformed handover entry")

// Entry is one record of the handover log. Its JSON form, as json.Marshal
// writes it, is the canonical form; see the package doc.
type Entry struct {
	V      int       `json:"v"`
	Type   Type      `json:"type"`
	Org    int64     `json:"org"`
	At     time.Time `json:"at"`
	Batch  int64     `json:"batch,omitempty"`
	Event  string    `json:"event,omitempty"`
	Store  string    `json:"store,omitempty"`
	Card   string    `json:"card,omitempty"`
	Count  *int64    `json:"count,omitempty"`
	Root   string    `json:"root,omitempty"`
	Key    string    `json:"key,omitempty"`
	Covers *int64    `json:"covers,omitempty"`
	Hash   string    `json:"hash,omitempty"`
	Note   string    `json:"note,omitempty"`
	Signer string    `json:"signer"`
	Sig    string    `json:"sig,omitempty"`
}

// N returns a pointer to n, for Count and Covers.
func N(n int64) *int64 { return &n }

// Marshal returns the canonical bytes of e. It refuses entries that would
// not parse back (see Validate).
func (e *Entry) Marshal() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e.marshal()
}

// marshal writes e exactly as json.Marshal does (the canonical form is
// defined by json.Marshal; TestMarshalIsEncodingJSON and the fuzz test hold
// the two together), without reflection: verification parses and
// re-marshals every entry of an export.
func (e *Entry) marshal() ([]byte, error) {
	b := make([]byte, 0, 384)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"type":`...)
	b = appendString(b, string(e.Type))
	b = append(b, `,"org":`...)
	b = strconv.AppendInt(b, e.Org, 10)
	at, err := e.At.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	b = append(b, `,"at":`...)
	b = append(b, at...)
	if e.Batch != 0 {
		b = append(b, `,"batch":`...)
		b = strconv.AppendInt(b, e.Batch, 10)
	}
	b = appendField(b, `,"event":`, e.Event)
	b = appendField(b, `,"store":`, e.Store)
	b = appendField(b, `,"card":`, e.Card)
	if e.Count != nil {
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, *e.Count, 10)
	}
	b = appendField(b, `,"root":`, e.Root)
	b = appendField(b, `,"key":`, e.Key)
	if e.Covers != nil {
		b = append(b, `,"covers":`...)
		b = strconv.AppendInt(b, *e.Covers, 10)
	}
	b = appendField(b, `,"hash":`, e.Hash)
	b = appendField(b, `,"note":`, e.Note)
	b = append(b, `,"signer":`...)
	b = appendString(b, e.Signer)
	b = appendField(b, `,"sig":`, e.Sig)
	return append(b, '}'), nil
}

// appendField appends an omitempty string field.
func appendField(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendString appends s as encoding/json quotes it: printable ASCII
// without '"', '\\', '<', '>' and '&' as it is, anything else through
// encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ParseEntry parses canonical entry bytes: JSON with exactly the fields of
// Entry, in order, as Marshal writes them. Errors wrap ErrMalformed.
func ParseEntry(b []byte) (Entry, error) {
	e, ok := scanCanonical(b)
	if !ok {
		// Unknown fields, other spellings and trailing space are refused
		// by the comparison with the canonical form below.
		e = Entry{}
		if err := json.Unmarshal(b, &e); err != nil {
			return Entry{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	back, err := e.marshal()
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(back, b) {
		return Entry{}, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return e, nil
}

// Validate checks the fields each type needs and forbids the others.
// Errors wrap ErrMalformed.
func (e *Entry) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, e.Type, fmt.Sprintf(format, args...))
	}
	if e.V != Version {
		return fmt.Errorf("%w: version %d, want %d", ErrMalformed, e.V, Version)
	}
	if e.Org < 1 {
		return bad("organizer %d", e.Org)
	}
	if e.At.IsZero() || e.At.Location() != time.UTC {
		return bad("time must be set, in UTC")
	}
	if _, _, err := ParseKeyID(e.Signer); err != nil {
		return bad("signer: %v", err)
	}
	if e.Sig != "" {
		if s, err := base64.StdEncoding.Strict().DecodeString(e.Sig); err != nil || len(s) != ed25519.SignatureSize {
			return bad("signature is not a base64 Ed25519 signature")
		}
	}
	if len(e.Note) > 200 {
		return bad("note longer than 200 bytes")
	}
	// The type's fields (Kinds) must be there, every other one empty.
	k := kindOf(e.Type)
	if k == nil {
		return fmt.Errorf("%w: unknown type %q", ErrMalformed, e.Type)
	}
	has := e.fields()
	for _, f := range fieldOrder {
		if k.Requires&f.f != 0 && has&f.f == 0 {
			return bad("%s missing", f.name)
		}
		if k.Carries&f.f == 0 && has&f.f != 0 {
			return bad("%s not allowed", f.name)
		}
	}
	w := has // the fields present, all carried
	if w&FieldBatch != 0 && e.Batch < 1 {
		return bad("batch %d", e.Batch)
	}
	if w&FieldStore != 0 && !validName(e.Store) {
		return bad("store %q: use 1 to 64 letters, digits, '.', '_' or '-'", e.Store)
	}
	if w&FieldEvent != 0 && !validName(e.Event) {
		return bad("event %q", e.Event)
	}
	if w&FieldCard != 0 {
		if _, err := parseCardNumber(e.Card); err != nil {
			return bad("card %q: %v", e.Card, err)
		}
	}
	if w&FieldCount != 0 && *e.Count < k.MinCount {
		return bad("count %d", *e.Count)
	}
	if w&FieldCovers != 0 && *e.Covers < 1 {
		return bad("covers %d", *e.Covers)
	}
	if w&(FieldRoot|FieldHash) != 0 {
		v := e.Root + e.Hash
		if _, err := tlog.ParseHash(v); err != nil {
			return bad("hash %q is not a base64 SHA-256 hash", v)
		}
	}
	if w&FieldKey != 0 {
		if _, err := parseVkey(e.Key); err != nil {
			return bad("key: %v", err)
		}
	}
	return nil
}

// validName reports whether s is a store or event identifier: 1 to 64
// ASCII letters, digits, '.', '_' or '-'.
func validName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// signedPrefix separates entry signatures from every other use of a key.
const signedPrefix = "loopcard handover entry v1\n"

// SignedMessage is what an entry's signature covers: a context line and
// the canonical entry without its signature.
func SignedMessage(e Entry) ([]byte, error) {
	e.Sig = ""
	b, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	return append([]byte(signedPrefix), b...), nil
}

// sealPrefix separates seal hashes from other hashes.
const sealPrefix = "loopcard handover seal v1\n"

// SealHash is the hash a seal signs: SHA-256 of a context line and the
// leaf hashes (tlog.RecordHash of the canonical bytes) of the entries it
// covers, in log order.
func SealHash(leaves []tlog.Hash) tlog.Hash {
	h := sha256.New()
	h.Write([]byte(sealPrefix))
	for _, l := range leaves {
		h.Write(l[:])
	}
	var out tlog.Hash
	h.Sum(out[:0])
	return out
}

// scanCanonical reads entries in the common canonical form quickly: known
// keys in order, integers, and strings without escapes. It gives up (ok
// false) on anything else, and ParseEntry falls back to encoding/json.
// Whatever it reads, ParseEntry still re-marshals and compares bytes, so
// a mistake here can refuse an entry but never accept a wrong one.
func scanCanonical(b []byte) (e Entry, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return Entry{}, false
	}
	p := 1
	next := 0 // index into scanKeys of the next key allowed
	for p < len(b)-1 {
		if next > 0 {
			if b[p] != ',' {
				return Entry{}, false
			}
			p++
		}
		// "key":
		if p >= len(b) || b[p] != '"' {
			return Entry{}, false
		}
		end := bytes.IndexByte(b[p+1:], '"')
		if end < 0 || p+end+2 >= len(b) || b[p+end+2] != ':' {
			return Entry{}, false
		}
		key := string(b[p+1 : p+1+end])
		p += end + 3
		k := next
		for k < len(scanKeys) && scanKeys[k] != key {
			k++
		}
		if k == len(scanKeys) {
			return Entry{}, false
		}
		next = k + 1
		// value: a string without escapes, or an integer
		var str string
		var num int64
		if p < len(b) && b[p] == '"' {
			end := bytes.IndexByte(b[p+1:], '"')
			if end < 0 || bytes.IndexByte(b[p+1:p+1+end], '\\') >= 0 {
				return Entry{}, false
			}
			str = string(b[p+1 : p+1+end])
			if key == "at" {
				if err := e.At.UnmarshalJSON(b[p : p+end+2]); err != nil {
					return Entry{}, false
				}
			}
			p += end + 2
		} else {
			q := p
			for q < len(b) && (b[q] == '-' || b[q] >= '0' && b[q] <= '9') {
				q++
			}
			n, err := strconv.ParseInt(string(b[p:q]), 10, 64)
			if err != nil {
				return Entry{}, false
			}
			num, p = n, q
		}
		switch key {
		case "v":
			e.V = int(num)
		case "type":
			e.Type = Type(str)
		case "org":
			e.Org = num
		case "batch":
			e.Batch = num
		case "event":
			e.Event = str
		case "store":
			e.Store = str
		case "card":
			e.Card = str
		case "count":
			e.Count = N(num)
		case "root":
			e.Root = str
		case "key":
			e.Key = str
		case "covers":
			e.Covers = N(num)
		case "hash":
			e.Hash = str
		case "note":
			e.Note = str
		case "signer":
			e.Signer = str
		case "sig":
			e.Sig = str
		}
	}
	return e, p == len(b)-1
}

// scanKeys are Entry's JSON keys in order.
var scanKeys = []string{"v", "type", "org", "at", "batch", "event", "store", "card", "count", "root", "key", "covers", "hash", "note", "signer", "sig"}
