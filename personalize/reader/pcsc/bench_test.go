package pcsc_test

import (
	"bytes"
	"encoding/hex"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loopcard/loopcard/personalize/desfire"
)

// The benchmarks run the vcard engineer's in-process benchmarks
// (personalize/vcard/bench_test.go) through pcscd and vpcd, with the same
// card set-up, so that the two sets of figures sit side by side.

// BenchmarkExchange measures single APDU exchanges of GetVersion size
// (5 bytes out, 9 back) through libpcsclite, pcscd, vpcd and the bridge, and
// reports the median, 90th and 99th percentiles, the maximum and the number
// of exchanges of 30 ms or more.
func BenchmarkExchange(b *testing.B) {
	h := newViaPCSC(b)
	getVersion := []byte{0x90, 0x60, 0x00, 0x00, 0x00}
	lat := make([]time.Duration, 0, 1024)
	for b.Loop() {
		start := time.Now()
		resp, err := h.Transmit(getVersion)
		lat = append(lat, time.Since(start))
		if err != nil || len(resp) != 9 {
			b.Fatalf("GetVersion: % X, %v", resp, err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "exchanges/s")
	// A delayed-ACK stall costs 40 ms or more; count the exchanges that
	// took that long.
	i, _ := slices.BinarySearch(lat, 30*time.Millisecond)
	b.ReportMetric(float64(len(lat)-i), "stalls")
}

func unhex(b testing.TB, s string) []byte {
	b.Helper()
	k, err := hex.DecodeString(s)
	require.NoError(b, err)
	return k
}

// benchCard personalizes the card behind the reader as the in-process
// benchmark does: AES keys 0-3 (non-zero), a full-mode value file with a
// large balance, a full-mode backup sequence file and a MAC-mode cyclic
// record file.
func benchCard(b *testing.B) (*desfire.Card, []desfire.Key) {
	b.Helper()
	h := newViaPCSC(b)
	c := desfire.New(h)
	var ks []desfire.Key
	for _, s := range []string{
		"00112233445566778899AABBCCDDEEFF", "A1A2A3A4A5A6A7A8A9AAABACADAEAFA0",
		"B1B2B3B4B5B6B7B8B9BABBBCBDBEBFB0", "C1C2C3C4C5C6C7C8C9CACBCCCDCECFC0",
	} {
		k, err := desfire.NewAESKey(unhex(b, s), 1)
		require.NoError(b, err)
		ks = append(ks, k)
	}
	const aid desfire.AID = 0x4C5043
	zero, err := desfire.NewAESKey(make([]byte, 16), 0)
	require.NoError(b, err)
	require.NoError(b, c.CreateApplication(aid, 0x0B, 4, desfire.KeyAES))
	require.NoError(b, c.SelectApplication(aid))
	require.NoError(b, c.AuthenticateEV2First(0, zero))
	for i := 1; i < 4; i++ {
		require.NoError(b, c.ChangeKey(byte(i), ks[i], zero))
	}
	require.NoError(b, c.ChangeKey(0, ks[0], desfire.Key{}))
	require.NoError(b, c.AuthenticateEV2First(0, ks[0]))
	ar := desfire.AccessRights{Read: 3, Write: 1, ReadWrite: 2, Change: 0}
	require.NoError(b, c.CreateValueFile(1, desfire.CommFull, ar, 0, math.MaxInt32, math.MaxInt32, false))
	require.NoError(b, c.CreateBackupDataFile(2, desfire.CommFull, ar, 16))
	require.NoError(b, c.CreateCyclicRecordFile(3, desfire.CommMAC, ar, 32, 11))
	return c, ks
}

func BenchmarkAuthenticateEV2First(b *testing.B) {
	c, ks := benchCard(b)
	for b.Loop() {
		if err := c.AuthenticateEV2First(1, ks[1]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auth/s")
}

// BenchmarkDebitTransaction is one payment through pcscd: authenticate with
// the debit key, debit, write the sequence and a record, commit.
func BenchmarkDebitTransaction(b *testing.B) {
	c, ks := benchCard(b)
	rec := bytes.Repeat([]byte{0x42}, 32)
	seq := make([]byte, 8)
	for b.Loop() {
		if err := c.AuthenticateEV2First(1, ks[1]); err != nil {
			b.Fatal(err)
		}
		if err := c.Debit(1, 1, desfire.CommFull); err != nil {
			b.Fatal(err)
		}
		if err := c.WriteData(2, 0, seq, desfire.CommFull); err != nil {
			b.Fatal(err)
		}
		if err := c.WriteRecord(3, 0, rec, desfire.CommMAC); err != nil {
			b.Fatal(err)
		}
		if err := c.CommitTransaction(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
}
