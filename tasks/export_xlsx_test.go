package tasks

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/storage"
)

// The merge rolls over to a new sheet, with its own header, at the row
// limit (10 here instead of Excel's 1,048,576), keeps the key order across
// parts and sheets, and writes times as Seoul dates.
func TestMergeXLSXRollsOverSheets(t *testing.T) {
	ctx := context.Background()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := exportKinds["bookings"]
	start := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC) // 10:00 in Seoul
	var want [][]string
	for p := 0; p < 3; p++ { // three parts of 8 rows: 24 rows
		var part [][]string
		for i := 0; i < 8; i++ {
			id := p*8 + i + 1
			at := start.Add(time.Duration(id) * time.Hour).Format(time.RFC3339)
			rec := []string{fmt.Sprint(id), "7", "김민지", "3", "COMPLETED", "true", "false", at, at, ""}
			part = append(part, rec)
			want = append(want, rec)
		}
		if err := writePart(ctx, store, fmt.Sprintf("exports/1/parts/%02d/0.part", p), "xlsx", k, part); err != nil {
			t.Fatal(err)
		}
	}
	parts := partHeaders(t, store, "exports/1/parts/")
	var out bytes.Buffer
	n, err := mergeXLSX(ctx, store, parts, k, &out, 10, time.Time{})
	if err != nil || n != 24 {
		t.Fatalf("merge: %d rows, %v", n, err)
	}
	x, err := excelize.OpenReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatalf("the merged file is not a workbook: %v", err)
	}
	defer x.Close()
	if got := strings.Join(x.GetSheetList(), ","); got != "Sheet1,Sheet2,Sheet3" {
		t.Fatalf("sheets %s, want Sheet1..3 (9 + 9 + 6 data rows)", got)
	}
	var got [][]string
	for _, sheet := range x.GetSheetList() {
		rows, err := x.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 10 || rows[0][0] != "id" || rows[0][7] != "started_at (Asia/Seoul)" {
			t.Fatalf("%s: %d rows, header %v", sheet, len(rows), rows[0])
		}
		got = append(got, rows[1:]...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d data rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i][0] != want[i][0] || got[i][2] != "김민지" {
			t.Fatalf("row %d: %v, want id %s", i, got[i], want[i][0])
		}
	}
	// Row 1 of the data is 11:00 Seoul (02:00Z), as a date cell.
	if v, _ := x.GetCellValue("Sheet1", "H2"); v != "2026-11-24 11:00:00" {
		t.Fatalf("started_at H2 = %q, want the Seoul wall clock 2026-11-24 11:00:00", v)
	}
	if typ, _ := x.GetCellType("Sheet1", "H2"); typ != excelize.CellTypeUnset && typ != excelize.CellTypeNumber {
		t.Fatalf("started_at cell type %v, want a date", typ)
	}
	if w, _ := x.GetColWidth("Sheet2", "H"); w < 20 {
		t.Fatalf("time column width %v on the rolled-over sheet", w)
	}
}

// BenchmarkMergeXLSX measures the XLSX merge alone (the export's serial
// tail, now a copy of the parts' deflate bytes) on 100k booking rows from
// local part files; compare with BenchmarkMergeCSV on the same rows.
func BenchmarkMergeXLSX(b *testing.B) { benchmarkMerge(b, "xlsx") }

// BenchmarkMergeCSV is BenchmarkMergeXLSX's baseline: the same parts to CSV.
func BenchmarkMergeCSV(b *testing.B) { benchmarkMerge(b, "csv") }

func benchmarkMerge(b *testing.B, format string) {
	ctx := context.Background()
	store, err := storage.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const rows, perPart = 100_000, 5_000
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	k := exportKinds["bookings"]
	for p := 0; p < rows/perPart; p++ {
		part := make([][]string, perPart)
		for i := 0; i < perPart; i++ {
			id := p*perPart + i + 1
			at := start.Add(time.Duration(id) * time.Minute).Format(time.RFC3339)
			part[i] = []string{fmt.Sprint(id), fmt.Sprint(id % 1000), fmt.Sprintf("회원%d", id%1000), fmt.Sprint(id % 500), "COMPLETED", fmt.Sprint(id%3 == 0), "false", at, at, ""}
		}
		if err := writePart(ctx, store, fmt.Sprintf("p/%04d.part", p), format, k, part); err != nil {
			b.Fatal(err)
		}
	}
	parts := partHeaders(b, store, "p/")
	var out countingWriter
	b.ResetTimer()
	for b.Loop() {
		var n int64
		out = 0
		if format == "xlsx" {
			n, err = mergeXLSX(ctx, store, parts, k, &out, xlsxMaxRows, time.Time{})
		} else {
			n, err = mergeCSV(ctx, store, parts, k, &out, true)
		}
		if err != nil || n != rows {
			b.Fatalf("%d rows, %v", n, err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(out)/rows, "bytes/row")
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
