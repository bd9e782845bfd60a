package personalize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CardID identifies a card within its organizer: the batch number and the
// card's slot in the batch, CardID = batch*SlotsPerBatch + slot. Its short
// form "BATCH-SLOT" is the card number printed on the label.
type CardID uint64

// SlotsPerBatch bounds the size of a batch; slots run from 1 to
// SlotsPerBatch-1.
const SlotsPerBatch = 100000

// NewCardID returns the id of slot of batch. Slots start at 1.
func NewCardID(batch int64, slot int) (CardID, error) {
	if batch < 1 || slot < 1 || slot >= SlotsPerBatch {
		return 0, fmt.Errorf("personalize: no card id for batch %d slot %d", batch, slot)
	}
	return CardID(uint64(batch)*SlotsPerBatch + uint64(slot)), nil
}

// Batch returns the batch number of the card.
func (id CardID) Batch() int64 { return int64(id / SlotsPerBatch) }

// Slot returns the card's slot in its batch.
func (id CardID) Slot() int { return int(id % SlotsPerBatch) }

// String returns the short card number, such as "12-00042".
func (id CardID) String() string { return fmt.Sprintf("%d-%05d", id.Batch(), id.Slot()) }

// ParseCardID parses the short card number written by String.
func ParseCardID(s string) (CardID, error) {
	b, sl, ok := strings.Cut(s, "-")
	batch, err1 := strconv.ParseInt(b, 10, 64)
	slot, err2 := strconv.Atoi(sl)
	if !ok || err1 != nil || err2 != nil || len(sl) != 5 {
		return 0, fmt.Errorf("personalize: card number %q: want BATCH-SLOT such as 12-00042", s)
	}
	return NewCardID(batch, slot)
}

// CardInfoFormat is the version of the card info encoding written by this
// code.
const CardInfoFormat = 1

// MaxIDLen bounds organizer and event identifiers.
const MaxIDLen = 32

// CardInfoSize is the encoded size of CardInfo: format, key version, card
// number, organizer, and the length-prefixed event identifier of up to
// MaxIDLen bytes.
const CardInfoSize = 1 + 1 + 8 + 8 + 1 + MaxIDLen

// ErrCardInfo is wrapped by errors of decoding or validating card info.
var ErrCardInfo = errors.New("invalid card info")

// CardInfo is the content of the card info file. The ledger knows a card by
// its UID; CardID is the number printed on its label.
type CardInfo struct {
	KeyVersion byte
	CardID     CardID
	OrgID      int64
	Event      string
}

// ValidID reports whether s is a usable event identifier: 1 to MaxIDLen
// bytes of letters, digits, '.', '_' and '-'.
func ValidID(s string) bool {
	if len(s) < 1 || len(s) > MaxIDLen {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// MarshalBinary encodes the card info in CardInfoSize bytes, zero padded:
// format, key version, card number and organizer (big-endian), then the
// event as a length byte and its bytes.
func (ci CardInfo) MarshalBinary() ([]byte, error) {
	if ci.OrgID < 1 {
		return nil, fmt.Errorf("%w: organizer %d", ErrCardInfo, ci.OrgID)
	}
	if !ValidID(ci.Event) {
		return nil, fmt.Errorf("%w: an event is 1 to %d letters, digits, '.', '_' or '-'", ErrCardInfo, MaxIDLen)
	}
	b := make([]byte, 0, CardInfoSize)
	b = append(b, CardInfoFormat, ci.KeyVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(ci.CardID))
	b = binary.BigEndian.AppendUint64(b, uint64(ci.OrgID))
	b = append(b, byte(len(ci.Event)))
	b = append(b, ci.Event...)
	return append(b, make([]byte, CardInfoSize-len(b))...), nil
}

// UnmarshalBinary decodes card info read from a card: at least the encoded
// bytes, trailing bytes must be zero. Errors wrap ErrCardInfo.
func (ci *CardInfo) UnmarshalBinary(b []byte) error {
	if len(b) < 19 {
		return fmt.Errorf("%w: %d bytes", ErrCardInfo, len(b))
	}
	if b[0] != CardInfoFormat {
		return fmt.Errorf("%w: format %d, this version reads %d", ErrCardInfo, b[0], CardInfoFormat)
	}
	var out CardInfo
	out.KeyVersion = b[1]
	out.CardID = CardID(binary.BigEndian.Uint64(b[2:10]))
	out.OrgID = int64(binary.BigEndian.Uint64(b[10:18]))
	if out.OrgID < 1 {
		return fmt.Errorf("%w: organizer %d", ErrCardInfo, out.OrgID)
	}
	rest := b[18:]
	n := int(rest[0])
	if n > len(rest)-1 {
		return fmt.Errorf("%w: truncated event", ErrCardInfo)
	}
	out.Event = string(rest[1 : 1+n])
	if !ValidID(out.Event) {
		return fmt.Errorf("%w: bad event", ErrCardInfo)
	}
	for _, c := range rest[1+n:] {
		if c != 0 {
			return fmt.Errorf("%w: non-zero padding", ErrCardInfo)
		}
	}
	*ci = out
	return nil
}
