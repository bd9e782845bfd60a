package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// terminalTxsCopy is the COPY statement that copyRows feeds: the columns
// of the multi-row INSERT in apply, in the same order.
const terminalTxsCopy = `COPY terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq,
	amount, balance_before, balance_after, merchant_id, at, signature, status, hold_reason, chained,
	card_account, merchant_account, nonrefundable_account, nonrefundable_contra, nonrefundable_spent) FROM STDIN (FORMAT binary)`

// copyHeader starts PostgreSQL's binary COPY format: the signature, no
// flags, no header extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// pgEpochMicros is where PostgreSQL's timestamps count from (2000-01-01
// UTC), in Unix microseconds.
var pgEpochMicros = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// terminalTxsCopyRaw is terminalTxsCopy with raw, for uploads with
// transactions that carry items (see terminalRows.raws).
const terminalTxsCopyRaw = `COPY terminal_txs (org_id, txn_id, terminal_id, terminal_seq, card_id, card_seq,
	amount, balance_before, balance_after, merchant_id, at, signature, status, hold_reason, chained,
	card_account, merchant_account, nonrefundable_account, nonrefundable_contra, nonrefundable_spent, raw) FROM STDIN (FORMAT binary)`

// copyData encodes the rows of r for terminalTxsCopy, organizer org, or
// terminalTxsCopyRaw when r has raws.
func (r *terminalRows) copyData(org int64) []byte {
	n := len(r.ids)
	buf := make([]byte, 0, len(copyHeader)+2+n*300)
	buf = append(buf, copyHeader...)
	i64 := func(v int64) {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(v))
	}
	raw := func(b []byte) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
		buf = append(buf, b...)
	}
	str := func(s string) {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	nullable := func(b []byte) {
		if b == nil {
			buf = binary.BigEndian.AppendUint32(buf, 0xffffffff) // NULL
			return
		}
		raw(b)
	}
	cols := uint16(20)
	if r.raws != nil {
		cols = 21
	}
	account := func(id int64) {
		if id == 0 {
			buf = binary.BigEndian.AppendUint32(buf, 0xffffffff) // NULL
			return
		}
		i64(id)
	}
	for k := range n {
		buf = binary.BigEndian.AppendUint16(buf, cols)
		i64(org)
		raw(r.ids[k].Bytes[:])
		str(r.terms[k])
		i64(r.tseqs[k])
		raw(r.cards[k])
		i64(r.cseqs[k])
		i64(r.amounts[k])
		i64(r.befores[k])
		i64(r.afters[k])
		str(r.merchants[k])
		// Exact and in range: terminal times are whole milliseconds before
		// year 10000 (terminaltx).
		i64(r.ats[k].UnixMilli()*1000 - pgEpochMicros)
		nullable(r.sigs[k])
		str(r.statuses[k])
		str(r.reasons[k])
		if r.chained[k] {
			raw([]byte{1})
		} else {
			raw([]byte{0})
		}
		account(r.cardAccounts[k])
		account(r.merchantAccounts[k])
		account(r.nrAccounts[k]) // 0: NULL, as for the accounts
		account(r.nrContras[k])
		if r.nrAccounts[k] == 0 {
			buf = binary.BigEndian.AppendUint32(buf, 0xffffffff)
		} else {
			i64(r.nrSpent[k]) // 0 too: the card's part is used up
		}
		if r.raws != nil {
			nullable(r.raws[k])
		}
	}
	return binary.BigEndian.AppendUint16(buf, 0xffff)
}

// copyRows writes the rows of r with COPY. A large upload's rows go to
// PostgreSQL with COPY in binary format rather
// than a multi-row INSERT of unnested arrays: the server then neither
// decodes sixteen arrays nor projects each row through the executor, and
// it writes the heap rows with one WAL record per page (heap_multi_insert)
// instead of one per row. Measured at one client with 500-transaction
// batches: about 3.5 us less PostgreSQL time and 55 bytes less WAL per
// transaction. COPY costs two more round trips, so small uploads (online
// submissions) keep the INSERT; see defaultCopyMinRows.
func copyRows(ctx context.Context, pc *pgconn.PgConn, org int64, r *terminalRows) error {
	stmt := terminalTxsCopy
	if r.raws != nil {
		stmt = terminalTxsCopyRaw
	}
	_, err := pc.CopyFrom(ctx, bytes.NewReader(r.copyData(org)), stmt)
	return err
}

// defaultCopyMinRows is the upload size from which COPY pays: its two
// extra round trips (tens of microseconds each on a local socket) then
// cost less than the server time it saves, about 3.5 us a row.
const defaultCopyMinRows = 32

// terminalTxItemsCopy is the COPY statement that copyItems feeds.
const terminalTxItemsCopy = `COPY terminal_tx_items (org_id, txn_id, line, merchant_id, at, product_id, quantity, unit_price,
	vat_rate_bp, menu_version) FROM STDIN (FORMAT binary)`

// copyData encodes the rows of r for terminalTxItemsCopy, organizer org.
func (r *itemRows) copyData(org int64) []byte {
	buf := make([]byte, 0, len(copyHeader)+2+len(r.ids)*100)
	buf = append(buf, copyHeader...)
	field := func(n int) { buf = binary.BigEndian.AppendUint32(buf, uint32(n)) }
	str := func(s string) {
		field(len(s))
		buf = append(buf, s...)
	}
	for k := range r.ids {
		buf = binary.BigEndian.AppendUint16(buf, 10)
		field(8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(org))
		field(16)
		buf = append(buf, r.ids[k].Bytes[:]...)
		field(2)
		buf = binary.BigEndian.AppendUint16(buf, uint16(r.lines[k]))
		str(r.merchants[k])
		field(8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(r.ats[k].UnixMilli()*1000-pgEpochMicros))
		str(r.products[k])
		field(4)
		buf = binary.BigEndian.AppendUint32(buf, uint32(r.quantities[k]))
		field(8)
		buf = binary.BigEndian.AppendUint64(buf, uint64(r.prices[k]))
		field(4)
		buf = binary.BigEndian.AppendUint32(buf, uint32(r.vats[k]))
		field(4)
		buf = binary.BigEndian.AppendUint32(buf, uint32(r.versions[k]))
	}
	return binary.BigEndian.AppendUint16(buf, 0xffff)
}

// copyItems writes the item rows of r with COPY, if any: a large upload's
// items, as its transactions (see copyRows).
func copyItems(ctx context.Context, pc *pgconn.PgConn, org int64, r *itemRows) error {
	if len(r.ids) == 0 {
		return nil
	}
	_, err := pc.CopyFrom(ctx, bytes.NewReader(r.copyData(org)), terminalTxItemsCopy)
	return err
}
