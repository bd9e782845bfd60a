package pos

import (
	"fmt"
	"os"

	"github.com/loopcard/loopcard/ledger/menu"
)

// categories returns the menu's categories in the order they first appear
// ("" for products without one).
func categories(m menu.Menu) []string {
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

// inCategory returns the products of category c, in menu order.
func inCategory(m menu.Menu, c string) []menu.Product {
	var out []menu.Product
	for _, p := range m.Products {
		if p.Category == c {
			out = append(out, p)
		}
	}
	return out
}

// LoadMenuFile reads a menu file as `loopcard menu set` does (JSON,
// {"products":[...]}, or CSV with the header
// id,name,price,vat_rate_bp,category,age_restricted,deposit) and validates
// it (menu.Parse). The menu has version 0: a local file's, not the
// server's.
func LoadMenuFile(path string) (menu.Menu, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return menu.Menu{}, fmt.Errorf("pos: menu: %w", err)
	}
	ps, err := menu.Parse(b)
	if err != nil {
		return menu.Menu{}, fmt.Errorf("pos: menu %s: %w", path, err)
	}
	return menu.Menu{Products: ps}, nil
}
