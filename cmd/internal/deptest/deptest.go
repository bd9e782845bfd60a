// Package deptest is Loopcard's layering as a test, in the style of
// tailscale's tstest/deptest: a Rule names packages and the packages they
// must never depend on, directly or through others; List reads the
// module's import graph with `go list -deps`, and Check reports every
// dependency a rule forbids. Layering holds the arrows of
// docs/architecture.md, and this package's test holds the module to them.
package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
)

// Module is the import path of Loopcard's module. Patterns whose first
// element has no dot are relative to it.
const Module = "github.com/loopcard/loopcard"

// A Rule forbids the packages matching Pkgs (but not Except) to depend on
// any package matching Bad (but not Allow), and with NoCgo on any package
// outside the standard library that has cgo files. A pattern is an import
// path, "PATH/..." for PATH and every package below it; paths without a
// dot in their first element are relative to Module.
type Rule struct {
	Why    string
	Pkgs   []string
	Except []string
	Bad    []string
	Allow  []string
	NoCgo  bool
}

// Package is one package of the import graph, as `go list` describes it.
type Package struct {
	ImportPath string
	Deps       []string // every package it depends on, directly or not
	Standard   bool
	CgoFiles   []string
}

// Graph is the import graph: every package by import path.
type Graph map[string]*Package

// A Violation is a dependency a rule forbids.
type Violation struct {
	Pkg, Dep string
	Rule     *Rule
}

func (v Violation) String() string {
	return fmt.Sprintf("%s depends on %s: %s", v.Pkg, v.Dep, v.Rule.Why)
}

// List reads the import graph of the packages matching patterns (as the go
// command takes them), and of everything they depend on, from
// `go list -deps` run in dir. Test files are not part of it.
func List(dir string, patterns ...string) (Graph, error) {
	args := append([]string{"list", "-deps", "-json=ImportPath,Deps,Standard,CgoFiles"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("deptest: go list: %w: %s", err, stderr.Bytes())
	}
	g := Graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(Package)
		err := dec.Decode(p)
		if errors.Is(err, io.EOF) {
			return g, nil
		}
		if err != nil {
			return nil, fmt.Errorf("deptest: go list output: %w", err)
		}
		g[p.ImportPath] = p
	}
}

// Check returns every dependency in g that one of rules forbids, in the
// order of the rules and then of the packages' import paths.
func Check(g Graph, rules []Rule) []Violation {
	paths := make([]string, 0, len(g))
	for p := range g {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	var out []Violation
	for i := range rules {
		r := &rules[i]
		for _, p := range paths {
			if !matchAny(r.Pkgs, p) || matchAny(r.Except, p) {
				continue
			}
			for _, d := range g[p].Deps {
				if matchAny(r.Allow, d) {
					continue
				}
				bad := matchAny(r.Bad, d)
				if r.NoCgo {
					if dp := g[d]; dp != nil && !dp.Standard && len(dp.CgoFiles) > 0 {
						bad = true
					}
				}
				if bad {
					out = append(out, Violation{Pkg: p, Dep: d, Rule: r})
				}
			}
		}
	}
	return out
}

func matchAny(patterns []string, path string) bool {
	for _, pat := range patterns {
		if match(pat, path) {
			return true
		}
	}
	return false
}

// match reports whether path matches pattern (see Rule).
func match(pattern, path string) bool {
	first, _, _ := strings.Cut(pattern, "/")
	if !strings.Contains(first, ".") {
		pattern = Module + "/" + pattern
	}
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == tree || strings.HasPrefix(path, tree+"/")
	}
	return path == pattern
}
