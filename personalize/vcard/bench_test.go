package vcard_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
	"github.com/loopcard/loopcard/personalize/vcard"
)

// link adapts a card to desfire.Transmitter.
type link struct{ c *vcard.Card }

func (l link) Transmit(a []byte) ([]byte, error) { return l.c.Transmit(a), nil }

// benchCard returns a client of a card with the Loopcard application: AES
// keys 0-3 (non-zero), a full-mode value file with a large balance, a
// full-mode backup sequence file and a cyclic record file.
func benchCard(b *testing.B) (*desfire.Card, []desfire.Key) {
	b.Helper()
	vc := newCard(b, vcard.Options{})
	c := desfire.New(link{vc})
	ks := make([]desfire.Key, 4)
	for i := range ks {
		k, err := desfire.NewAESKey(appKeys[i], 1)
		require.NoError(b, err)
		ks[i] = k
	}
	zero, err := desfire.NewAESKey(make([]byte, 16), 0)
	require.NoError(b, err)
	require.NoError(b, c.CreateApplication(testAID, 0x0B, 4, desfire.KeyAES))
	require.NoError(b, c.SelectApplication(testAID))
	require.NoError(b, c.AuthenticateEV2First(0, zero))
	for i := 1; i < 4; i++ {
		require.NoError(b, c.ChangeKey(byte(i), ks[i], zero))
	}
	require.NoError(b, c.ChangeKey(0, ks[0], desfire.Key{}))
	require.NoError(b, c.AuthenticateEV2First(0, ks[0]))
	ar := desfire.AccessRights{Read: 3, Write: 1, ReadWrite: 2, Change: 0}
	require.NoError(b, c.CreateValueFile(1, full, ar, 0, math.MaxInt32, math.MaxInt32, false))
	require.NoError(b, c.CreateBackupDataFile(2, full, ar, 16))
	require.NoError(b, c.CreateCyclicRecordFile(3, mac, ar, 32, 11))
	return c, ks
}

func BenchmarkAuthenticateEV2First(b *testing.B) {
	c, ks := benchCard(b)
	b.ResetTimer()
	for b.Loop() {
		if err := c.AuthenticateEV2First(1, ks[1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auth/s")
}

// BenchmarkDebitTransaction is one payment: authenticate with the debit key,
// debit, write the sequence and a record, commit.
func BenchmarkDebitTransaction(b *testing.B) {
	c, ks := benchCard(b)
	rec := bytes.Repeat([]byte{0x42}, 32)
	seq := make([]byte, 8)
	b.ResetTimer()
	for b.Loop() {
		if err := c.AuthenticateEV2First(1, ks[1]); err != nil {
			b.Fatal(err)
		}
		if err := c.Debit(1, 1, full); err != nil {
			b.Fatal(err)
		}
		if err := c.WriteData(2, 0, seq, full); err != nil {
			b.Fatal(err)
		}
		if err := c.WriteRecord(3, 0, rec, mac); err != nil {
			b.Fatal(err)
		}
		if err := c.CommitTransaction(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
