package keys

import (
	"context"
	"testing"

	"github.com/loopcard/loopcard/keys/keyderiv"
)

// benchKey and benchM are a non-zero base key and an 18-byte AN10922 input.
var (
	benchKey = []byte("\x2b\x7e\x15\x16\x28\xae\xd2\xa6\xab\xf7\x15\x88\x09\xcf\x4f\x3c")
	benchM   = []byte("\x04\x78\x2E\x21\x80\x1D\x80\x30\x42\xF5LOOPCARD")
)

// BenchmarkDiversifyHSM and BenchmarkDiversifyGo report AN10922
// diversifications per second (div/s) through the HSM (CKM_AES_CMAC in
// SoftHSM2, one session) and through the pure-Go reference; run them
// together: go test -run '^$' -bench Diversify ./keys/
func BenchmarkDiversifyHSM(b *testing.B) {
	h := openTest(b)
	ctx := context.Background()
	l := importKnown(b, h, AppMaster, benchKey)
	for b.Loop() {
		k, _, err := h.Diversify(ctx, l, benchM)
		if err != nil {
			b.Fatal(err)
		}
		k.Destroy()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "div/s")
}

func BenchmarkDiversifyGo(b *testing.B) {
	base, err := keyderiv.NewAESKey(benchKey)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		k, err := keyderiv.AN10922(base, benchM)
		if err != nil {
			b.Fatal(err)
		}
		k.Destroy()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "div/s")
}

// BenchmarkNewest reports PIN verification values and diversifications with
// version 0 ("the newest"), as the station calls them, on a token holding
// the whole hierarchy: go test -run '^$' -bench Newest ./keys/
func BenchmarkNewest(b *testing.B) {
	h := openTest(b)
	ctx := context.Background()
	if _, err := h.Init(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("PVV", func(b *testing.B) {
		pin, err := h.NewPIN(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := h.PINVerificationValue(ctx, []byte("card-1"), pin); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pvv/s")
	})
	b.Run("Diversify", func(b *testing.B) {
		for b.Loop() {
			k, _, err := h.Diversify(ctx, Label{Name: AppMaster}, benchM)
			if err != nil {
				b.Fatal(err)
			}
			k.Destroy()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "div/s")
	})
}
