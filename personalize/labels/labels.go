// Package labels writes the print files of a card batch: a PDF with one
// label per card (QR code of the card's URL, short card number, PIN) as an
// A4 sheet with cut marks or one card-sized page per card for card
// printers, and a CSV for card printers. These files are the only place a
// PIN exists in clear: they are written with mode 0600, atomically, and
// should be destroyed once printed.
package labels

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"codeberg.org/go-pdf/fpdf"
	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
	"github.com/loopcard/loopcard/keys"
	"github.com/loopcard/loopcard/personalize/qrpin"
)

// FileMode is the permission of every print file.
const FileMode os.FileMode = 0o600

// Label is what is printed for one card.
type Label struct {
	// Number is the short card number, such as "12-00042".
	Number string
	Token  qrpin.Token
	PIN    keys.PIN
}

// Sheet is the page layout of the PDF.
type Sheet int

// Page layouts.
const (
	// A4Grid puts ten card-sized labels on an A4 page, two columns of five,
	// with cut marks in the margins along every cut line.
	A4Grid Sheet = iota
	// OnePerPage makes one page of card size (ISO/IEC 7810 ID-1, 85.6 x 54
	// mm) per card, for card printers.
	OnePerPage
)

// ParseSheet maps "a4" and "card" to a Sheet.
func ParseSheet(s string) (Sheet, error) {
	switch s {
	case "a4", "":
		return A4Grid, nil
	case "card":
		return OnePerPage, nil
	}
	return 0, fmt.Errorf("labels: sheet %q: want a4 or card", s)
}

// Card size in millimetres (ISO/IEC 7810 ID-1).
const (
	cardW = 85.6
	cardH = 54.0
)

// A4 grid geometry in millimetres.
const (
	a4W, a4H  = 210.0, 297.0
	gridCols  = 2
	gridRows  = 5
	gridLeft  = (a4W - gridCols*cardW) / 2
	gridTop   = (a4H - gridRows*cardH) / 2
	markGap   = 2.0 // distance of a cut mark from the grid
	markLen   = 6.0
	qrSize    = 40.0
	qrMarginX = 5.0
)

// PerPage is the number of labels on an A4 sheet.
const PerPage = gridCols * gridRows

// WritePDF writes one label per card to path (mode 0600, replaced
// atomically). publicURL is the base of card URLs in the QR codes.
func WritePDF(path string, ls []Label, publicURL string, sheet Sheet) error {
	if err := qrpin.CheckPublicURL(publicURL); err != nil {
		return err
	}
	var pdf *fpdf.Fpdf
	switch sheet {
	case A4Grid:
		pdf = fpdf.New("P", "mm", "A4", "")
	case OnePerPage:
		pdf = fpdf.NewCustom(&fpdf.InitType{OrientationStr: "L", UnitStr: "mm", Size: fpdf.SizeType{Wd: cardH, Ht: cardW}})
	default:
		return fmt.Errorf("labels: unknown sheet %d", sheet)
	}
	pdf.SetAutoPageBreak(false, 0)
	pdf.SetMargins(0, 0, 0)
	pdf.SetTitle("Loopcard card labels", false)
	pdf.SetCreator("loopcard", false)
	for i, l := range ls {
		var x, y float64
		switch sheet {
		case A4Grid:
			if i%PerPage == 0 {
				pdf.AddPage()
				cutMarks(pdf)
			}
			cell := i % PerPage
			x = gridLeft + float64(cell%gridCols)*cardW
			y = gridTop + float64(cell/gridCols)*cardH
		case OnePerPage:
			pdf.AddPage()
		}
		if err := drawLabel(pdf, x, y, l, publicURL); err != nil {
			return fmt.Errorf("labels: card %s: %w", l.Number, err)
		}
	}
	if len(ls) == 0 {
		pdf.AddPage()
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	return writeFile(path, pdf.Output)
}

// cutMarks draws short lines in the page margins along every cut line of
// the grid, clear of the labels themselves.
func cutMarks(pdf *fpdf.Fpdf) {
	pdf.SetDrawColor(0, 0, 0)
	pdf.SetLineWidth(0.2)
	top, bottom := gridTop, gridTop+gridRows*cardH
	left, right := gridLeft, gridLeft+gridCols*cardW
	for c := 0; c <= gridCols; c++ {
		x := gridLeft + float64(c)*cardW
		pdf.Line(x, top-markGap-markLen, x, top-markGap)
		pdf.Line(x, bottom+markGap, x, bottom+markGap+markLen)
	}
	for r := 0; r <= gridRows; r++ {
		y := gridTop + float64(r)*cardH
		pdf.Line(left-markGap-markLen, y, left-markGap, y)
		pdf.Line(right+markGap, y, right+markGap+markLen, y)
	}
}

// drawLabel draws one card-sized label with its top left corner at x, y.
func drawLabel(pdf *fpdf.Fpdf, x, y float64, l Label, publicURL string) error {
	if l.PIN.Reveal() == "" {
		return errors.New("no PIN")
	}
	u := l.Token.URL(publicURL)
	code, err := qr.Encode(u, qr.M, qr.Auto)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	qx, qy := x+qrMarginX, y+(cardH-qrSize)/2
	drawQR(pdf, code, qx, qy, qrSize)

	tx := qx + qrSize + 4
	pdf.SetTextColor(0, 0, 0)
	pdf.SetFont("Helvetica", "", 7)
	pdf.Text(tx, y+12, "Card")
	pdf.SetFont("Courier", "B", 12)
	pdf.Text(tx, y+17.5, l.Number)
	pdf.SetFont("Helvetica", "", 7)
	pdf.Text(tx, y+27, "PIN")
	pdf.SetFont("Courier", "B", 16)
	pdf.Text(tx, y+34, l.PIN.Reveal())
	pdf.SetFont("Helvetica", "", 6)
	pdf.Text(tx, y+42, "Scan for balance and top-up.")
	pdf.Text(tx, y+45, "Keep the PIN secret.")
	return nil
}

// drawQR draws the dark modules of code as filled rectangles, one per run
// of dark modules in a row. The white quiet zone is the label's margin.
func drawQR(pdf *fpdf.Fpdf, code barcode.Barcode, x, y, size float64) {
	b := code.Bounds()
	n := b.Dx()
	m := size / float64(n)
	pdf.SetFillColor(0, 0, 0)
	dark := func(i, j int) bool {
		r, _, _, _ := code.At(b.Min.X+i, b.Min.Y+j).RGBA()
		return r < 0x8000
	}
	for j := range n {
		for i := 0; i < n; {
			if !dark(i, j) {
				i++
				continue
			}
			start := i
			for i < n && dark(i, j) {
				i++
			}
			// A hair of overlap avoids white seams between rows when
			// rasterised.
			pdf.Rect(x+float64(start)*m, y+float64(j)*m, float64(i-start)*m, m+0.01, "F")
		}
	}
}

// csvHeader is the first row of the CSV.
var csvHeader = []string{"card_number", "url", "pin"}

// WriteCSV writes one row per card (card number, URL, PIN) after a header
// row to path (mode 0600, replaced atomically).
func WriteCSV(path string, ls []Label, publicURL string) error {
	if err := qrpin.CheckPublicURL(publicURL); err != nil {
		return err
	}
	return writeFile(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
		for _, l := range ls {
			if err := cw.Write(csvRow(l, publicURL)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

func csvRow(l Label, publicURL string) []string {
	return []string{l.Number, l.Token.URL(publicURL), l.PIN.Reveal()}
}

// ErrCSV is wrapped by errors of reading a label CSV.
var ErrCSV = errors.New("labels: bad label CSV")

// ReadCSV reads labels written by WriteCSV or a Spool. When a card number
// appears more than once the last row wins; labels come back sorted by
// card number.
func ReadCSV(r io.Reader, publicURL string) ([]Label, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(csvHeader)
	rows, err := cr.ReadAll()
	if err != nil {
		// The text of a csv.ParseError quotes no field content.
		return nil, fmt.Errorf("%w: %w", ErrCSV, err)
	}
	byNumber := map[string]Label{}
	for i, row := range rows {
		if i == 0 && slices.Equal(row, csvHeader) {
			continue
		}
		tok, err := qrpin.ParseURL(publicURL, row[1])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrCSV, i+1, err)
		}
		pin, err := keys.ParsePIN(row[2])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrCSV, i+1, err)
		}
		byNumber[row[0]] = Label{Number: row[0], Token: tok, PIN: pin}
	}
	out := make([]Label, 0, len(byNumber))
	for _, l := range byNumber {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Label) int { return compareNumbers(a.Number, b.Number) })
	return out, nil
}

// compareNumbers orders "BATCH-SLOT" card numbers numerically by batch,
// then by slot (slots are zero padded).
func compareNumbers(a, b string) int {
	ab, as, _ := strings.Cut(a, "-")
	bb, bs, _ := strings.Cut(b, "-")
	if len(ab) != len(bb) {
		return len(ab) - len(bb)
	}
	if c := strings.Compare(ab, bb); c != 0 {
		return c
	}
	return strings.Compare(as, bs)
}

// writeFile writes path atomically with FileMode: a temporary file in the
// same directory, synced, then renamed over path.
func writeFile(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(FileMode); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if err := write(f); err != nil {
		return fmt.Errorf("labels: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	return nil
}
