package labels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize/qrpin"
	"github.com/stretchr/testify/require"
)

const publicURL = "https://pay.example.com/c/"

func testLabels(t *testing.T, n int) []Label {
	t.Helper()
	ls := make([]Label, n)
	for i := range ls {
		raw := make([]byte, qrpin.TokenSize)
		binary.BigEndian.PutUint64(raw, uint64(i+1)*0x9E3779B97F4A7C15)
		binary.BigEndian.PutUint64(raw[8:], uint64(i+7)*0xC2B2AE3D27D4EB4F)
		tok, err := qrpin.NewToken(raw)
		require.NoError(t, err)
		pin, err := keys.ParsePIN(fmt.Sprintf("%06d", (i*7919+13)%1000000))
		require.NoError(t, err)
		ls[i] = Label{Number: fmt.Sprintf("7-%05d", i+1), Token: tok, PIN: pin}
	}
	return ls
}

func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (scripts/setup)", tool, pkg)
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", name, args, out)
	return string(out)
}

func TestPDF(t *testing.T) {
	pdfinfo := need(t, "pdfinfo", "poppler-utils")
	pdftotext := need(t, "pdftotext", "poppler-utils")
	pdftoppm := need(t, "pdftoppm", "poppler-utils")
	zbarimg := need(t, "zbarimg", "zbar-tools")

	tests := []struct {
		name     string
		sheet    Sheet
		n        int
		pages    int
		pageSize string
	}{
		{"a4 grid", A4Grid, 13, 2, "595.28 x 841.89 pts (A4)"},
		{"one per page", OnePerPage, 3, 3, "242.65 x 153.07 pts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "labels.pdf")
			ls := testLabels(t, tt.n)
			require.NoError(t, WritePDF(path, ls, publicURL, tt.sheet))

			st, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, FileMode, st.Mode().Perm())

			info := run(t, pdfinfo, path)
			require.Regexp(t, fmt.Sprintf(`(?m)^Pages:\s+%d$`, tt.pages), info)
			require.Contains(t, info, tt.pageSize)

			text := run(t, pdftotext, "-layout", path, "-")
			for _, l := range ls {
				require.Equal(t, 1, strings.Count(text, l.Number), "card %s", l.Number)
				require.Contains(t, text, l.PIN.Reveal())
			}
			require.Len(t, regexp.MustCompile(`\b7-\d{5}\b`).FindAllString(text, -1), tt.n, "one label per card")

			run(t, pdftoppm, "-r", "300", "-gray", "-png", path, filepath.Join(dir, "page"))
			pages, err := filepath.Glob(filepath.Join(dir, "page*.png"))
			require.NoError(t, err)
			require.Len(t, pages, tt.pages)
			cmd := exec.Command(zbarimg, append([]string{"--raw", "-q", "-Sdisable", "-Sqrcode.enable"}, pages...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			require.NoError(t, err, "zbarimg: %s", stderr.String())
			got := strings.Fields(string(out))
			var want []string
			for _, l := range ls {
				want = append(want, l.Token.URL(publicURL))
			}
			slices.Sort(got)
			slices.Sort(want)
			require.Equal(t, want, got, "every QR code decodes to its card's URL")
		})
	}
}

func TestPDFRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pdf")
	require.Error(t, WritePDF(path, testLabels(t, 1), "not a url", A4Grid))
	require.Error(t, WritePDF(path, []Label{{Number: "1-00001"}}, publicURL, A4Grid))
	_, err := os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "no file is left behind")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Empty(t, entries, "no temporary file is left behind")
}

func TestCSVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "labels.csv")
	// An existing world-readable file is replaced by a 0600 one.
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	ls := testLabels(t, 12)
	require.NoError(t, WriteCSV(path, ls, publicURL))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 13)
	require.Equal(t, "card_number,url,pin", lines[0])
	require.Equal(t, ls[0].Number+","+ls[0].Token.URL(publicURL)+","+ls[0].PIN.Reveal(), lines[1])

	back, err := ReadCSV(bytes.NewReader(b), publicURL)
	require.NoError(t, err)
	requireSameLabels(t, ls, back)

	for name, bad := range map[string]string{
		"fields": "card_number,url,pin\n1-00001,x\n",
		"url":    "1-00001,https://other/c/AAAAAAAAAAAAAAAAAAAAAA,123456\n",
		"pin":    "1-00001," + ls[0].Token.URL(publicURL) + ",12345x\n",
	} {
		_, err := ReadCSV(strings.NewReader(bad), publicURL)
		require.ErrorIs(t, err, ErrCSV, name)
		require.NotContains(t, err.Error(), "12345x")
	}
}

func TestSpool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool.csv")
	ls := testLabels(t, 5)
	s, got, err := OpenSpool(path, publicURL)
	require.NoError(t, err)
	require.Empty(t, got)
	for _, l := range ls[:3] {
		require.NoError(t, s.Append(l))
	}
	require.NoError(t, s.Close())

	// A crash mid-append leaves a partial line: it is dropped on reopening.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(ls[3].Number + "," + publicURL[:10])
	require.NoError(t, err)
	require.NoError(t, f.Close())

	s, got, err = OpenSpool(path, publicURL)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	requireSameLabels(t, ls[:3], got)

	// Relabelling a card after a crash: the last label wins.
	again := testLabels(t, 5)[3:]
	again[0].Number = ls[1].Number
	require.NoError(t, s.Append(again[0]))
	require.NoError(t, s.Append(ls[3]))
	got, err = s.Labels()
	require.NoError(t, err)
	requireSameLabels(t, []Label{ls[0], again[0], ls[2], ls[3]}, got)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, FileMode, st.Mode().Perm())
}

func TestCompareNumbers(t *testing.T) {
	ns := []string{"10-00001", "9-00002", "9-00010", "9-00001"}
	slices.SortFunc(ns, compareNumbers)
	require.Equal(t, []string{"9-00001", "9-00002", "9-00010", "10-00001"}, ns)
}

func requireSameLabels(t *testing.T, want, got []Label) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Number, got[i].Number)
		require.True(t, want[i].Token.Equal(got[i].Token), "token of %s", want[i].Number)
		require.Equal(t, want[i].PIN.Reveal(), got[i].PIN.Reveal(), "PIN of %s", want[i].Number)
	}
}

// FuzzReadCSV: whatever a label CSV holds, ReadCSV either refuses it with
// ErrCSV or returns labels that WriteCSV writes back and ReadCSV reads the
// same.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("card_number,url,pin\n1-00001," + publicURL + "ABEiM0RVZneImaq7zN3u_w,012345\n"))
	f.Add([]byte("1-00001,x,1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ls, err := ReadCSV(bytes.NewReader(in), publicURL)
		if err != nil {
			require.ErrorIs(t, err, ErrCSV)
			return
		}
		path := filepath.Join(t.TempDir(), "l.csv")
		require.NoError(t, WriteCSV(path, ls, publicURL))
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		back, err := ReadCSV(bytes.NewReader(b), publicURL)
		require.NoError(t, err)
		requireSameLabels(t, ls, back)
	})
}
