// Package menu is a merchant's menu: the products a point of sale sells,
// with their gross prices in cents, VAT rates in basis points, categories
// and flags (age-restricted, returnable deposit item). HQ sets a menu from
// a JSON or CSV file (Parse); the ledger stores each set as a new version
// and terminals keep their merchant's current one for offline use.
//
// It imports only the standard library and ledger/input: the ledger, the
// API, the commands and the reference terminal all use it.
package menu

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/loopcard/loopcard/ledger/input"
)

// Bounds.
const (
	// MaxProducts is the most products one menu holds.
	MaxProducts = 200
	// MaxIDLen is the longest product id.
	MaxIDLen = 32
	// MaxVATRateBP is the highest VAT rate, in basis points (100 %).
	MaxVATRateBP = 10000
	// MaxCategory is the longest category name (bytes).
	MaxCategory = 64
	// MaxFileSize is the largest menu file Parse reads.
	MaxFileSize = 256 << 10
)

// ErrInvalid is wrapped by every error of Parse and Validate.
var ErrInvalid = errors.New("menu: invalid menu")

// Product is one product of a menu. Price is gross (VAT included), in
// cents; for a deposit item it is the deposit given back per returned item.
type Product struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Price         int64  `json:"price"`
	VATRateBP     int32  `json:"vat_rate_bp"`
	Category      string `json:"category,omitempty"`
	AgeRestricted bool   `json:"age_restricted,omitempty"`
	Deposit       bool   `json:"deposit,omitempty"`
}

// Menu is one version of a merchant's menu.
type Menu struct {
	Merchant string    `json:"merchant"`
	Version  int32     `json:"version"`
	Products []Product `json:"products"`
}

// Product returns the product with id.
func (m *Menu) Product(id string) (Product, bool) {
	for _, p := range m.Products {
		if p.ID == id {
			return p, true
		}
	}
	return Product{}, false
}

// ValidID reports whether s is a product id: 1 to MaxIDLen bytes of
// a-z 0-9 . _ -.
func ValidID(s string) bool {
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

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// Validate checks a menu's products: 1 to MaxProducts of them, ids valid
// and unique, names and categories valid text (ledger/input), prices 0 to
// input.MaxAmount (a deposit item's price at least 1), VAT rates 0 to
// MaxVATRateBP. Errors wrap ErrInvalid and name the product.
func Validate(products []Product) error {
	if len(products) == 0 {
		return bad("no products")
	}
	if len(products) > MaxProducts {
		return bad("%d products, at most %d", len(products), MaxProducts)
	}
	seen := make(map[string]bool, len(products))
	for i, p := range products {
		where := fmt.Sprintf("product %d", i+1)
		if ValidID(p.ID) {
			where = fmt.Sprintf("product %q", p.ID)
		}
		switch {
		case !ValidID(p.ID):
			return bad("%s: id must be 1 to %d characters of a-z 0-9 . _ -", where, MaxIDLen)
		case seen[p.ID]:
			return bad("%s: id used twice", where)
		}
		seen[p.ID] = true
		if err := input.Name("name", p.Name); err != nil {
			return bad("%s: %v", where, err)
		}
		if p.Category != "" {
			if err := input.Name("category", p.Category); err != nil || len(p.Category) > MaxCategory {
				return bad("%s: category must be one line of at most %d bytes", where, MaxCategory)
			}
		}
		if err := input.AmountOrZero("price", p.Price); err != nil {
			return bad("%s: %v", where, err)
		}
		if p.Deposit && p.Price == 0 {
			return bad("%s: a deposit item needs a price (the deposit)", where)
		}
		if p.VATRateBP < 0 || p.VATRateBP > MaxVATRateBP {
			return bad("%s: vat_rate_bp must be 0 to %d (2100 is 21 %%)", where, MaxVATRateBP)
		}
	}
	return nil
}

// Parse reads a menu file, JSON ({"products": [...]}) or CSV (a header
// line "id,name,price,vat_rate_bp,category,age_restricted,deposit", then
// one product a line; booleans true or false, prices in cents), and
// validates it. JSON is recognised by its first non-blank byte '{'.
// Errors wrap ErrInvalid.
func Parse(b []byte) ([]Product, error) {
	if len(b) > MaxFileSize {
		return nil, bad("file is larger than %d bytes", MaxFileSize)
	}
	var ps []Product
	var err error
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		ps, err = parseJSON(t)
	} else {
		ps, err = parseCSV(b)
	}
	if err != nil {
		return nil, err
	}
	if err := Validate(ps); err != nil {
		return nil, err
	}
	return ps, nil
}

func parseJSON(b []byte) ([]Product, error) {
	var f struct {
		Products []Product `json:"products"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, bad("JSON: %v", err)
	}
	if d.More() {
		return nil, bad("JSON: more than one object")
	}
	return f.Products, nil
}

// CSVHeader is the header line of a CSV menu.
var CSVHeader = []string{"id", "name", "price", "vat_rate_bp", "category", "age_restricted", "deposit"}

func parseCSV(b []byte) ([]Product, error) {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = len(CSVHeader)
	r.TrimLeadingSpace = true
	head, err := r.Read()
	if err != nil {
		return nil, bad("CSV: %v", err)
	}
	if strings.Join(head, ",") != strings.Join(CSVHeader, ",") {
		return nil, bad("CSV: the header must be %s", strings.Join(CSVHeader, ","))
	}
	var out []Product
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, bad("CSV: %v", err)
		}
		if len(out) == MaxProducts {
			return nil, bad("more than %d products", MaxProducts)
		}
		p := Product{ID: rec[0], Name: rec[1], Category: rec[4]}
		if p.Price, err = strconv.ParseInt(rec[2], 10, 64); err != nil {
			return nil, bad("CSV line %d: price must be a whole number of cents", line)
		}
		vat, err := strconv.ParseInt(rec[3], 10, 32)
		if err != nil {
			return nil, bad("CSV line %d: vat_rate_bp must be a whole number (2100 is 21 %%)", line)
		}
		p.VATRateBP = int32(vat)
		if p.AgeRestricted, err = parseBool(rec[5]); err != nil {
			return nil, bad("CSV line %d: age_restricted must be true or false", line)
		}
		if p.Deposit, err = parseBool(rec[6]); err != nil {
			return nil, bad("CSV line %d: deposit must be true or false", line)
		}
		out = append(out, p)
	}
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false", "":
		return false, nil
	}
	return false, errors.New("not a boolean")
}

// CSV writes products as a CSV menu that Parse reads back.
func CSV(w io.Writer, products []Product) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, p := range products {
		if err := cw.Write([]string{p.ID, p.Name, strconv.FormatInt(p.Price, 10), strconv.FormatInt(int64(p.VATRateBP), 10),
			p.Category, strconv.FormatBool(p.AgeRestricted), strconv.FormatBool(p.Deposit)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
