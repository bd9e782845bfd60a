package pos

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Product is one button of the menu, as the menu file of issue 19's
// contract names it: prices in cents, VAT-inclusive; the VAT rate in basis
// points.
//
// MERGE(i19a): this mirrors ledger/menu.Product; when the terminal syncs
// menus, TerminalTill.Menu converts its menu.Menu into this.
type Product struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Price         int64  `json:"price"`
	VATRateBP     int32  `json:"vat_rate_bp"`
	Category      string `json:"category"`
	AgeRestricted bool   `json:"age_restricted,omitempty"`
	Deposit       bool   `json:"deposit,omitempty"`
}

// Menu is a merchant's products; Version 0 is a local file's.
type Menu struct {
	Merchant string    `json:"merchant,omitempty"`
	Version  int32     `json:"version,omitempty"`
	Products []Product `json:"products"`
}

// maxProducts is the most products a menu holds.
const maxProducts = 200

// maxPrice bounds a product's price (10,000.00).
const maxPrice = 1_000_000

// Product returns the product with id.
func (m Menu) Product(id string) (Product, bool) {
	for _, p := range m.Products {
		if p.ID == id {
			return p, true
		}
	}
	return Product{}, false
}

// Categories returns the menu's categories in the order they first appear.
func (m Menu) Categories() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range m.Products {
		if !seen[p.Category] {
			seen[p.Category] = true
			out = append(out, p.Category)
		}
	}
	return out
}

// InCategory returns the products of category c, in menu order.
func (m Menu) InCategory(c string) []Product {
	var out []Product
	for _, p := range m.Products {
		if p.Category == c {
			out = append(out, p)
		}
	}
	return out
}

func validProductID(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validText(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Validate checks the menu against the contract: ids of [a-z0-9._-] (1 to
// 32), names and categories of 1 to 64 printable characters, prices from 0
// to 10,000.00, VAT rates from 0 to 10000 bp, at most 200 products, no id
// twice.
func (m Menu) Validate() error {
	if len(m.Products) == 0 || len(m.Products) > maxProducts {
		return fmt.Errorf("pos: a menu has 1 to %d products, not %d", maxProducts, len(m.Products))
	}
	seen := map[string]bool{}
	for i, p := range m.Products {
		switch {
		case !validProductID(p.ID):
			return fmt.Errorf("pos: product %d: id %q is not 1 to 32 of a-z 0-9 . _ -", i+1, p.ID)
		case seen[p.ID]:
			return fmt.Errorf("pos: product %q appears twice", p.ID)
		case !validText(p.Name, 64):
			return fmt.Errorf("pos: product %q: name must be 1 to 64 printable characters", p.ID)
		case !validText(p.Category, 64):
			return fmt.Errorf("pos: product %q: category must be 1 to 64 printable characters", p.ID)
		case p.Price < 0 || p.Price > maxPrice:
			return fmt.Errorf("pos: product %q: price %d cents is not between 0 and %d", p.ID, p.Price, maxPrice)
		case p.VATRateBP < 0 || p.VATRateBP > 10000:
			return fmt.Errorf("pos: product %q: VAT rate %d bp is not between 0 and 10000", p.ID, p.VATRateBP)
		}
		seen[p.ID] = true
	}
	return nil
}

// LoadMenuFile reads a menu from a JSON file of the contract's format,
// {"products":[...]}, and validates it.
func LoadMenuFile(path string) (Menu, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Menu{}, fmt.Errorf("pos: menu: %w", err)
	}
	var m Menu
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return Menu{}, fmt.Errorf("pos: menu %s does not parse: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return Menu{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}
