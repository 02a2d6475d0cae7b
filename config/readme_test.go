package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/passbatch/passbatch/config"
)

// TestEveryVariableDocumented: every variable config.Load reads is named in
// the README (its configuration table or the jobs table).
func TestEveryVariableDocumented(t *testing.T) {
	var src []byte
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	vars := config.ScheduleVars
	for _, m := range regexp.MustCompile(`(?:get\(|\{|Setting\(get, )"([A-Z][A-Z0-9_]+)"`).FindAllSubmatch(src, -1) {
		vars = append(vars, string(m[1]))
	}
	if len(vars) < 30 {
		t.Fatalf("found only %d variables in the package: the pattern is broken", len(vars))
	}
	for _, v := range vars {
		if !strings.Contains(string(readme), v) {
			t.Errorf("%s is read by config.Load but not in the README", v)
		}
	}
}
