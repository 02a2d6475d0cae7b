package testenv

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
)

// LibreOfficeCSV converts an XLSX workbook's first sheet to CSV with
// headless LibreOffice Calc (Debian's libreoffice-calc-nogui, which `make
// test` installs) and returns its rows, cell text as Calc shows it. ok is
// false when soffice is not installed.
func LibreOfficeCSV(t T, xlsx []byte) (rows [][]string, ok bool) {
	t.Helper()
	soffice, err := exec.LookPath("soffice")
	if err != nil {
		return nil, false
	}
	dir, err := os.MkdirTemp("", "passbatch-soffice-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	in := filepath.Join(dir, "book.xlsx")
	if err := os.WriteFile(in, xlsx, 0o644); err != nil {
		t.Fatal(err)
	}
	// A profile of its own, so parallel conversions do not share one.
	cmd := exec.Command(soffice, "--headless", "-env:UserInstallation=file://"+dir+"/profile",
		"--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false", "--outdir", dir, in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("soffice: %v\n%s", err, out)
	}
	body, err := os.ReadFile(filepath.Join(dir, "book.csv"))
	if err != nil {
		t.Fatalf("soffice wrote no CSV: %v", err)
	}
	rows, err = csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("soffice's CSV: %v", err)
	}
	return rows, true
}
