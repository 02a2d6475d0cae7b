package funclen_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/passbatch/passbatch/internal/funclen"
)

// MaxLines is the longest a function outside tests may be.
const MaxLines = 60

// TestNoLongFunctions: no function in the module (tests aside) is over
// MaxLines lines; make lint runs it and lists any.
func TestNoLongFunctions(t *testing.T) {
	long, err := funclen.Long(filepath.Join("..", ".."), MaxLines)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range long {
		t.Errorf("%s (at most %d)", f, MaxLines)
	}
}

// TestLongFindsALongFunction: the check sees a long function, and only
// outside tests.
func TestLongFindsALongFunction(t *testing.T) {
	dir := t.TempDir()
	body := "package x\n\nfunc Long() {\n"
	for range 61 {
		body += "\t_ = 1\n"
	}
	body += "}\n\nfunc Short() {}\n"
	for _, name := range []string{"x.go", "x_test.go"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long, err := funclen.Long(dir, MaxLines)
	if err != nil || len(long) != 1 || long[0].Name != "Long" || long[0].Lines != 63 {
		t.Fatalf("found %v (%v), want Long at 63 lines in x.go only", long, err)
	}
}
