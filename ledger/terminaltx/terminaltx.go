// Package terminaltx is the wire format of a terminal transaction: the
// canonical, versioned byte encoding that a terminal signs with its enrolled
// Ed25519 key and uploads, and that the ledger verifies and stores.
//
// Version 1 encodes, in order (integers big-endian, strings and card ids
// prefixed by a one-byte length):
//
//	magic          4  "LCTX"
//	version        1  0x01
//	kind           1  0x01 = debit (the only kind of version 1)
//	id            16  terminal-made transaction id (UUIDv7 layout recommended)
//	organizer      8  organizer id, > 0
//	terminal     1+n  terminal id, 1..64 bytes of [a-z0-9._-]
//	terminal seq   8  terminal's sequence number, > 0
//	card         1+n  card id: the card's UID, 4..10 bytes
//	card seq       4  card's transaction counter after this debit, > 0
//	amount         8  debited amount in minor units (cents), > 0
//	before         8  card balance before, >= 0
//	after          8  card balance after = before - amount
//	merchant     1+n  merchant id, same alphabet as the terminal id
//	time           8  terminal clock, Unix milliseconds, > 0 and before
//	                  year 10000 (< 253402300800000)
//	signature     64  Ed25519 over every byte above
//
// Version 2 is version 1 with the basket's line items between the time and
// the signature (version byte 0x02):
//
//	items          1  number of items, 1..MaxItems
//	each item:
//	  product    1+n  product id of the menu, 1..32 bytes of [a-z0-9._-]
//	  quantity     4  signed (two's complement), not 0, |q| <= MaxQuantity;
//	                  negative for a returned deposit item (a cup)
//	  unit price   8  gross price in cents, 0..2^31-1
//	  VAT rate     2  basis points, 0..10000 (2100 = 21 %)
//	  menu version 4  the menu version the price came from, > 0
//
// and the sum of quantity × unit price over the items equals the amount.
// A transaction with items is written as version 2, one without as
// version 1; Parse accepts both.
//
// Exactly one encoding is accepted for each transaction: Parse rejects any
// other version, bad lengths, out-of-range values, a version 2 without
// items and trailing bytes, so Parse then Marshal returns the input
// unchanged.
package terminaltx

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/loopcard/loopcard/ledger/input"
	"github.com/loopcard/loopcard/ledger/txid"
)

// Version is the encoding version of a transaction without items;
// VersionItems that of one with items.
const (
	Version      = 1
	VersionItems = 2
)

// KindDebit is a payment: the card pays the merchant.
const KindDebit = 1

const (
	magic = "LCTX"
	// MaxIDLen is the longest terminal or merchant id.
	MaxIDLen = 64
	// MinCardIDLen and MaxCardIDLen bound a card id (a DESFire UID is 4, 7 or 10 bytes).
	MinCardIDLen = 4
	MaxCardIDLen = 10
	// SignatureSize is the length of the trailing Ed25519 signature.
	SignatureSize = ed25519.SignatureSize
	// MaxItems is the most line items of one transaction.
	MaxItems = 64
	// MaxProductIDLen is the longest product id of an item.
	MaxProductIDLen = 32
	// MaxQuantity bounds an item's quantity either way.
	MaxQuantity = 9999
	// MaxVATRateBP is the highest VAT rate of an item, in basis points.
	MaxVATRateBP = 10000
	// maxItemSize is the longest encoding of one item.
	maxItemSize = 1 + MaxProductIDLen + 4 + 8 + 2 + 4
	// MaxSize is the longest encoding.
	MaxSize = 4 + 1 + 1 + 16 + 8 + 1 + MaxIDLen + 8 + 1 + MaxCardIDLen + 4 + 8 + 8 + 8 + 1 + MaxIDLen + 8 +
		1 + MaxItems*maxItemSize + SignatureSize
)

// maxTimeMillis bounds a transaction's time: year 10000 in Unix
// milliseconds. Every time below it is a valid PostgreSQL timestamp that
// the ledger stores exactly; far beyond it one would overflow on the way.
const maxTimeMillis = 253402300800000

// Errors returned by Parse and Verify.
var (
	ErrMalformed = errors.New("terminaltx: malformed transaction")
	ErrVersion   = errors.New("terminaltx: unsupported version")
	ErrSignature = errors.New("terminaltx: bad signature")
)

// Tx is one terminal transaction.
type Tx struct {
	Kind          byte
	ID            txid.ID
	Organizer     int64
	Terminal      string
	TerminalSeq   int64
	Card          []byte
	CardSeq       uint32
	Amount        int64
	BalanceBefore int64
	BalanceAfter  int64
	Merchant      string
	Time          time.Time // kept to the millisecond
	// Items are the basket's line items: none for version 1.
	Items []Item
}

// Item is one line of a transaction's basket.
type Item struct {
	Product     string
	Quantity    int32 // negative for a returned deposit item
	UnitPrice   int64 // gross, cents
	VATRateBP   int32
	MenuVersion int32
}

// Total is the sum of quantity × unit price over items. With items
// within their bounds it cannot overflow.
func Total(items []Item) int64 {
	var sum int64
	for _, it := range items {
		sum += int64(it.Quantity) * it.UnitPrice
	}
	return sum
}

// EncodingVersion is the version t is encoded in: VersionItems when it has
// items, else Version.
func (t *Tx) EncodingVersion() byte {
	if len(t.Items) > 0 {
		return VersionItems
	}
	return Version
}

// Signed is a transaction with its signature, as parsed from the wire.
type Signed struct {
	Tx
	payload   []byte // the signed bytes
	Signature []byte
}

// Payload returns the signed bytes (the encoding without the signature).
func (s *Signed) Payload() []byte { return s.payload }

// ContentHash is SHA-256 of the signed bytes: two uploads with one id are
// the same transaction exactly when their content hashes are equal.
func (s *Signed) ContentHash() [32]byte { return sha256.Sum256(s.payload) }

// Bytes returns the full encoding: payload then signature.
func (s *Signed) Bytes() []byte {
	b := make([]byte, 0, len(s.payload)+len(s.Signature))
	return append(append(b, s.payload...), s.Signature...)
}

// Verify checks the signature against the terminal's public key.
func (s *Signed) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, s.payload, s.Signature) {
		return ErrSignature
	}
	return nil
}

// Validate reports the first field of t that is out of range, wrapping ErrMalformed.
func (t *Tx) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrMalformed}, a...)...) }
	switch {
	case t.Kind != KindDebit:
		return bad("unknown kind %d", t.Kind)
	case t.ID == txid.ID{}:
		return bad("zero id")
	case t.Organizer <= 0:
		return bad("organizer must be positive")
	case !validID(t.Terminal):
		return bad("terminal id must be 1..%d bytes of a-z 0-9 . _ -", MaxIDLen)
	case t.TerminalSeq <= 0:
		return bad("terminal sequence must be positive")
	case len(t.Card) < MinCardIDLen || len(t.Card) > MaxCardIDLen:
		return bad("card id must be %d..%d bytes", MinCardIDLen, MaxCardIDLen)
	case t.CardSeq == 0:
		return bad("card sequence must be positive")
	case t.Amount <= 0 || t.Amount > input.MaxAmount:
		return bad("amount must be 1 to %d", input.MaxAmount)
	case t.BalanceBefore < 0 || t.BalanceAfter < 0 || t.BalanceBefore > input.MaxAmount:
		return bad("balances must be 0 to %d", input.MaxAmount)
	case t.BalanceBefore-t.Amount != t.BalanceAfter:
		return bad("balance after must be balance before minus amount")
	case !validID(t.Merchant):
		return bad("merchant id must be 1..%d bytes of a-z 0-9 . _ -", MaxIDLen)
	case t.Time.UnixMilli() <= 0:
		return bad("time must be after 1970")
	case t.Time.UnixMilli() >= maxTimeMillis:
		return bad("time must be before year 10000")
	case len(t.Items) > MaxItems:
		return bad("at most %d items", MaxItems)
	}
	for i, it := range t.Items {
		switch {
		case !validProduct(it.Product):
			return bad("item %d: product id must be 1..%d bytes of a-z 0-9 . _ -", i+1, MaxProductIDLen)
		case it.Quantity == 0 || it.Quantity > MaxQuantity || it.Quantity < -MaxQuantity:
			return bad("item %d: quantity must be 1 to %d, or -1 to -%d for a returned item", i+1, MaxQuantity, MaxQuantity)
		case it.UnitPrice < 0 || it.UnitPrice > input.MaxAmount:
			return bad("item %d: unit price must be 0 to %d", i+1, input.MaxAmount)
		case it.VATRateBP < 0 || it.VATRateBP > MaxVATRateBP:
			return bad("item %d: VAT rate must be 0 to %d basis points", i+1, MaxVATRateBP)
		case it.MenuVersion <= 0:
			return bad("item %d: menu version must be positive", i+1)
		}
	}
	if len(t.Items) > 0 && Total(t.Items) != t.Amount {
		return bad("items sum to %d, the amount is %d", Total(t.Items), t.Amount)
	}
	return nil
}

func validProduct(s string) bool { return len(s) <= MaxProductIDLen && validID(s) }

func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid terminal or merchant id.
func ValidID(s string) bool { return validID(s) }

// MarshalPayload returns the bytes to sign. It fails with ErrMalformed when
// a field is out of range.
func (t *Tx) MarshalPayload() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxSize)
	b = append(b, magic...)
	b = append(b, t.EncodingVersion(), t.Kind)
	b = append(b, t.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Organizer))
	b = append(b, byte(len(t.Terminal)))
	b = append(b, t.Terminal...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.TerminalSeq))
	b = append(b, byte(len(t.Card)))
	b = append(b, t.Card...)
	b = binary.BigEndian.AppendUint32(b, t.CardSeq)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Amount))
	b = binary.BigEndian.AppendUint64(b, uint64(t.BalanceBefore))
	b = binary.BigEndian.AppendUint64(b, uint64(t.BalanceAfter))
	b = append(b, byte(len(t.Merchant)))
	b = append(b, t.Merchant...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.Time.UnixMilli()))
	if len(t.Items) > 0 {
		b = append(b, byte(len(t.Items)))
		for _, it := range t.Items {
			b = append(b, byte(len(it.Product)))
			b = append(b, it.Product...)
			b = binary.BigEndian.AppendUint32(b, uint32(it.Quantity))
			b = binary.BigEndian.AppendUint64(b, uint64(it.UnitPrice))
			b = binary.BigEndian.AppendUint16(b, uint16(it.VATRateBP))
			b = binary.BigEndian.AppendUint32(b, uint32(it.MenuVersion))
		}
	}
	return b, nil
}

// Sign encodes t and signs it with the terminal's private key.
func Sign(t *Tx, priv ed25519.PrivateKey) (*Signed, error) {
	p, err := t.MarshalPayload()
	if err != nil {
		return nil, err
	}
	s := &Signed{Tx: *t, payload: p, Signature: ed25519.Sign(priv, p)}
	s.Card = bytes.Clone(t.Card)
	s.Items = slices.Clone(t.Items)
	s.Time = time.UnixMilli(t.Time.UnixMilli()).UTC()
	return s, nil
}

// Parse decodes one signed transaction from untrusted bytes. It does not
// verify the signature (that needs the terminal's key: see Signed.Verify).
// Errors wrap ErrMalformed or ErrVersion.
func Parse(b []byte) (*Signed, error) {
	r := reader{b: b}
	if string(r.take(4)) != magic {
		return nil, fmt.Errorf("%w: not a terminal transaction", ErrMalformed)
	}
	v := r.byte()
	if v != Version && v != VersionItems {
		if r.err {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		return nil, fmt.Errorf("%w %d", ErrVersion, v)
	}
	var t Tx
	t.Kind = r.byte()
	copy(t.ID[:], r.take(16))
	t.Organizer = int64(r.u64())
	t.Terminal = string(r.short(MaxIDLen))
	t.TerminalSeq = int64(r.u64())
	t.Card = bytes.Clone(r.short(MaxCardIDLen))
	t.CardSeq = r.u32()
	t.Amount = int64(r.u64())
	t.BalanceBefore = int64(r.u64())
	t.BalanceAfter = int64(r.u64())
	t.Merchant = string(r.short(MaxIDLen))
	t.Time = time.UnixMilli(int64(r.u64())).UTC()
	if v == VersionItems {
		k := int(r.byte())
		if k == 0 || k > MaxItems {
			return nil, fmt.Errorf("%w: version 2 needs 1 to %d items", ErrMalformed, MaxItems)
		}
		t.Items = make([]Item, k)
		for i := range t.Items {
			t.Items[i] = Item{Product: string(r.short(MaxProductIDLen)), Quantity: int32(r.u32()),
				UnitPrice: int64(r.u64()), VATRateBP: int32(r.u16()), MenuVersion: int32(r.u32())}
		}
	}
	n := r.off
	sig := r.take(SignatureSize)
	if r.err {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-r.off)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &Signed{Tx: t, payload: bytes.Clone(b[:n]), Signature: bytes.Clone(sig)}, nil
}

// CardHex is the text form of a card id: upper-case hex, as printed in
// reports, CSV and JSON.
func CardHex(card []byte) string { return strings.ToUpper(hex.EncodeToString(card)) }

// ParseCardHex parses the text form of a card id.
func ParseCardHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < MinCardIDLen || len(b) > MaxCardIDLen {
		return nil, fmt.Errorf("%w: card id must be %d..%d bytes in hex", ErrMalformed, MinCardIDLen, MaxCardIDLen)
	}
	return b, nil
}

type reader struct {
	b   []byte
	off int
	err bool
}

func (r *reader) take(n int) []byte {
	if r.err || n > len(r.b)-r.off {
		r.err = true
		return make([]byte, n)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) byte() byte  { return r.take(1)[0] }
func (r *reader) u16() uint16 { return binary.BigEndian.Uint16(r.take(2)) }
func (r *reader) u32() uint32 { return binary.BigEndian.Uint32(r.take(4)) }
func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) short(max int) []byte {
	n := int(r.byte())
	if n > max {
		r.err = true
		return nil
	}
	return r.take(n)
}

// MaxBatch is the most transactions one batch may carry.
const MaxBatch = 10000

// AppendBatch appends a batch framing of txs to b: each encoding prefixed by
// its length as two big-endian bytes. It is the body of a batch upload.
func AppendBatch(b []byte, txs ...*Signed) []byte {
	for _, s := range txs {
		n := len(s.payload) + len(s.Signature)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = append(append(b, s.payload...), s.Signature...)
	}
	return b
}

// SplitBatch splits a batch body into its encodings without parsing them, so
// that one malformed transaction can be reported without rejecting the rest.
// It fails with ErrMalformed when the framing itself is broken or the batch
// holds more than MaxBatch transactions.
func SplitBatch(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: truncated batch", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(b))
		if n > MaxSize || n > len(b)-2 {
			return nil, fmt.Errorf("%w: bad length in batch", ErrMalformed)
		}
		if len(out) == MaxBatch {
			return nil, fmt.Errorf("%w: more than %d transactions in one batch", ErrMalformed, MaxBatch)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}
