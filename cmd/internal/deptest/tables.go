package deptest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A TableRef is a table named by SQL (or by a pgx.Identifier) in a Go
// source file.
type TableRef struct {
	Pkg   string // the file's package, relative to Module
	File  string // the file, relative to the module root
	Line  int
	Table string
}

func (r TableRef) String() string { return fmt.Sprintf("%s:%d: %s", r.File, r.Line, r.Table) }

// sqlTable finds the table after a keyword that names one: FROM, JOIN,
// INTO, UPDATE, COPY, TABLE (ALTER, LOCK, TRUNCATE TABLE) and TRUNCATE.
// Loopcard writes SQL keywords in upper case, so prose ("from the
// store") does not match.
var sqlTable = regexp.MustCompile(`\b(?:FROM|JOIN|INTO|UPDATE|COPY|TABLE|TRUNCATE)\s+(?:ONLY\s+)?(?:public\.)?"?([a-z_][a-z0-9_]*)`)

// SQLTables returns the names that follow a table keyword in s, in order.
func SQLTables(s string) []string {
	var out []string
	for _, m := range sqlTable.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// FileTables returns the tables that the Go source src names: in the SQL
// of its string literals, and in the strings of pgx.Identifier literals.
// Only names for which known is true are returned, so that aliases, CTEs
// and functions are not. Comments are not read.
func FileTables(fset *token.FileSet, name string, src any, known func(string) bool) ([]TableRef, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []TableRef
	add := func(pos token.Pos, table string) {
		if known(table) {
			out = append(out, TableRef{File: name, Line: fset.Position(pos).Line, Table: table})
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Identifier" {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "pgx" {
					for _, e := range n.Elts {
						if s, ok := stringLit(e); ok {
							add(e.Pos(), s)
						}
					}
				}
			}
		case *ast.BasicLit:
			if s, ok := stringLit(n); ok {
				for _, t := range SQLTables(s) {
					add(n.Pos(), t)
				}
			}
		}
		return true
	})
	return out, nil
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// ModuleTables walks the module's Go source under root (no tests, no
// testdata, no hidden directories) and returns every table reference.
func ModuleTables(root string, known func(string) bool) ([]TableRef, error) {
	var out []TableRef
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		refs, err := FileTables(fset, rel, readFile(path), known)
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(filepath.Dir(rel))
		for i := range refs {
			refs[i].Pkg = pkg
		}
		out = append(out, refs...)
		return nil
	})
	return out, err
}

// readFile returns a source reader for parser.ParseFile: the file's
// bytes, or nil (ParseFile then reads it, and reports the error).
func readFile(path string) any {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return b
}

// A TableException lets one package name another's table. Table "*" is
// every table.
type TableException struct {
	Pkg, Table string
	Why        string
}

// TableViolation is SQL over a table outside the package that owns it.
type TableViolation struct {
	Ref   TableRef
	Owner string
}

func (v TableViolation) String() string {
	return fmt.Sprintf("%s: package %s names table %s, which %s owns: ask the owner (add a lookup there)", v.Ref, v.Ref.Pkg, v.Ref.Table, v.Owner)
}

// CheckTables returns the references of refs whose package is neither the
// table's owner (owner returns it relative to Module) nor one of the
// owner's sub-packages, and that no exception allows.
func CheckTables(refs []TableRef, owner func(table string) (string, bool), except []TableException) []TableViolation {
	var out []TableViolation
	for _, r := range refs {
		o, ok := owner(r.Table)
		if !ok || r.Pkg == o || strings.HasPrefix(r.Pkg, o+"/") {
			continue
		}
		if slices.ContainsFunc(except, func(e TableException) bool {
			return e.Pkg == r.Pkg && (e.Table == "*" || e.Table == r.Table)
		}) {
			continue
		}
		out = append(out, TableViolation{Ref: r, Owner: o})
	}
	return out
}

// TableExceptions are the packages that may name tables they do not own,
// each with why. None is needed today: backups run pg_dump over the whole
// database and name no table, and test helpers that migrate a database
// run no SQL of their own. Add one here, with its reason, rather than
// weaken CheckTables.
var TableExceptions = []TableException{}
