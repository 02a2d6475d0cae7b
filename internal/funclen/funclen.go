// Package funclen finds functions longer than a limit in Go source, so
// that a test (and make lint) keeps every function short enough to read
// at once.
package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
)

// Func is a function and its length in lines, from its declaration to its
// closing brace.
type Func struct {
	File  string
	Line  int
	Name  string
	Lines int
}

func (f Func) String() string {
	return fmt.Sprintf("%s:%d: %s is %d lines", f.File, f.Line, f.Name, f.Lines)
}

// Long lists the functions over max lines in the .go files under root,
// tests and hidden or vendored directories left out.
func Long(root string, max int) ([]Func, error) {
	var out []Func
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()), fset.Position(fd.Body.Rbrace)
			if n := end.Line - start.Line + 1; n > max {
				out = append(out, Func{File: p, Line: start.Line, Name: fd.Name.Name, Lines: n})
			}
		}
		return nil
	})
	return out, err
}
