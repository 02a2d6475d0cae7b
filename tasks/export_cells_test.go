package tasks_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/tasks"
)

// passCells is what a passes export must hold, from the source query, in
// id order: CSV as RFC 3339 UTC text, XLSX as the Seoul wall clock; NULL
// is an empty cell in both.
func (b *bundle) passCells(t *testing.T, format string) [][]string {
	t.Helper()
	var rows []struct {
		ID        int64      `bun:"id"`
		UserID    int64      `bun:"user_id"`
		Name      string     `bun:"name"`
		Package   string     `bun:"package"`
		Status    string     `bun:"status"`
		Remaining *int       `bun:"remaining_count"`
		Started   *time.Time `bun:"started_at"`
		Ended     *time.Time `bun:"ended_at"`
		Expired   *time.Time `bun:"expired_at"`
	}
	if err := b.db.NewRaw(`SELECT p.id, p.user_id, u.name, k.name AS package, p.status, p.remaining_count, p.started_at, p.ended_at, p.expired_at
		FROM pass p JOIN users u ON u.id = p.user_id JOIN package k ON k.id = p.package_id ORDER BY p.id`).Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	at := func(v *time.Time) string {
		switch {
		case v == nil:
			return ""
		case format == "csv":
			return v.UTC().Format(time.RFC3339)
		default:
			return v.In(models.Seoul).Format("2006-01-02 15:04:05")
		}
	}
	out := make([][]string, len(rows))
	for i, r := range rows {
		left := ""
		if r.Remaining != nil {
			left = fmt.Sprint(*r.Remaining)
		}
		out[i] = []string{fmt.Sprint(r.ID), fmt.Sprint(r.UserID), r.Name, r.Package, r.Status, left, at(r.Started), at(r.Ended), at(r.Expired)}
	}
	return out
}

// TestExportEveryCell exports 12,003 passes (three partitions' worth of
// chunks) to CSV and XLSX and compares every cell with the source query:
// a pass whose every nullable column (count, end, expiry) is NULL and
// whose start has a fraction of a second (cut, in both formats), Korean
// names, a name full of XML's special characters. The XLSX is checked as a zip (each entry's
// CRC-32), read back with excelize, and, where LibreOffice is installed,
// converted to CSV by it. An export with no rows is a header alone.
func TestExportEveryCell(t *testing.T) {
	t.Parallel()
	b := setup(t, options{partitions: 3})
	b.base(t)
	b.exec(t, `INSERT INTO users (id, name, email) VALUES (4, '<b>&"Tom" O''Neil</b> ', 'd@x');
		INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at, ended_at, expired_at) VALUES
		(1, 2, 1, 'READY', NULL, '2026-06-01T00:00:00.654321Z', NULL, NULL),
		(2, 1, 4, 'EXPIRED', 0, '2026-01-01T15:30:00Z', '2026-03-01T14:59:59Z', '2026-03-01T15:00:00Z');
		INSERT INTO pass (id, package_id, user_id, status, remaining_count, started_at, ended_at)
		SELECT 2 + i, 1 + i % 2, 1 + i % 3, 'PROGRESSED', i % 10, timestamptz '2026-11-01T00:00:00Z' + i * interval '1 minute', NULL
		FROM generate_series(1, 12001) AS i`)
	for _, format := range []string{"csv", "xlsx"} {
		e := b.runExport(t, tasks.ExportRequest{Kind: "passes", Format: format})
		body := b.readFile(t, *e.FileKey)
		var got [][]string
		if format == "csv" {
			got = readCSV(t, body)
		} else {
			got = readXLSX(t, body)
			if rows, ok := testenv.LibreOfficeCSV(t, body); ok {
				compareCells(t, "LibreOffice", rows[1:], b.passCells(t, format))
			} else {
				t.Log("LibreOffice is not installed: its check was skipped")
			}
		}
		if strings.Join(got[0], ",") != "id,user_id,user_name,package,status,remaining_count,started_at,ended_at,expired_at" &&
			!strings.HasPrefix(got[0][6], "started_at (Asia/Seoul)") {
			t.Fatalf("%s header %v", format, got[0])
		}
		compareCells(t, format, got[1:], b.passCells(t, format))
		if e.WrittenRows != 12003 {
			t.Fatalf("%s: written_rows %d, want 12003", format, e.WrittenRows)
		}
	}
	// Nothing started before 2026: no rows, a header alone, in both formats.
	to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, format := range []string{"csv", "xlsx"} {
		e := b.runExport(t, tasks.ExportRequest{Kind: "passes", Format: format, Filter: tasks.ExportFilter{To: &to}})
		body := b.readFile(t, *e.FileKey)
		var got [][]string
		if format == "csv" {
			got = readCSV(t, body)
		} else {
			got = readXLSX(t, body)
		}
		if len(got) != 1 || got[0][0] != "id" || e.WrittenRows != 0 || *e.TotalRows != 0 {
			t.Fatalf("%s of no rows: %v, written %d", format, got, e.WrittenRows)
		}
	}
}

func (b *bundle) readFile(t *testing.T, key string) []byte {
	t.Helper()
	f, err := b.store.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// readCSV reads an export's CSV, which must start with the UTF-8 BOM.
func readCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	rest, ok := bytes.CutPrefix(body, []byte("\uFEFF"))
	if !ok {
		t.Fatalf("the CSV starts %q, not with the UTF-8 BOM", body[:min(len(body), 8)])
	}
	recs, err := csv.NewReader(bytes.NewReader(rest)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// readXLSX checks the file as a zip (reading each entry to its end checks
// its CRC-32) and returns Sheet1's rows, as excelize reads them.
func readXLSX(t *testing.T, body []byte) [][]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		rc.Close()
	}
	x, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rows, err := x.GetRows("Sheet1")
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// compareCells compares rows cell by cell; missing trailing cells read as
// empty, and booleans as lower case.
func compareCells(t *testing.T, what string, got, want [][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		row := append(append([]string{}, got[i]...), make([]string, len(want[i]))...)[:len(want[i])]
		if strings.Join(row, "|") != strings.Join(want[i], "|") {
			t.Fatalf("%s row %d:\n got %q\nwant %q", what, i+1, row, want[i])
		}
	}
}
