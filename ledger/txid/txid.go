// Package txid is the ledger's transaction id: a UUID that names every
// transaction the ledger journals (journal.txn_id) — a terminal's debit, a
// cash top-up or card sale (a client's Idempotency-Key), a load, a refund,
// a store's receipt — whoever makes it (a terminal, a client, the ledger),
// so that one id type and one column answer "was this recorded". It is a
// leaf: the wire format (ledger/terminaltx), the clients and the ledger all
// use it.
package txid

import (
	"encoding/hex"
	"errors"
	"time"
)

// ID is a transaction id.
type ID [16]byte

// String returns the id in UUID text form.
func (id ID) String() string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// New returns a UUIDv7 made from t and 10 random bytes from rnd (which must
// hold at least 10 bytes): ids sort by creation time, which keeps the
// ledger's index inserts local.
func New(t time.Time, rnd []byte) ID {
	var id ID
	ms := uint64(t.UnixMilli())
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(id[6:], rnd[:10])
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	return id
}

// Parse reads an id in UUID text form (36 characters, as String writes it).
func Parse(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, errors.New("txid: not a UUID")
	}
	b, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	if err != nil {
		return id, errors.New("txid: not a UUID")
	}
	copy(id[:], b)
	return id, nil
}
