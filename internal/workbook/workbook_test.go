package workbook

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
	"github.com/xuri/excelize/v2"

	"github.com/passbatch/passbatch/internal/testenv"
)

func TestCRC32Combine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		a := make([]byte, r.IntN(3000))
		b := make([]byte, r.IntN(3000))
		for j := range a {
			a[j] = byte(r.Uint32())
		}
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		want := crc32.ChecksumIEEE(append(append([]byte{}, a...), b...))
		if got := CRC32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b))); got != want {
			t.Fatalf("len %d+%d: combined %08x, want %08x", len(a), len(b), got, want)
		}
	}
}

var cols = []Column{{"id", 8}, {"name", 14}, {"ok", 6}, {"at (Asia/Seoul)", 28}, {"note", 14}}

var seoul = time.FixedZone("KST", 9*3600)

// sample is row i: id, a name (Korean, XML specials, spaces), a bool, a
// time and, every third row, nothing at all but the id.
func sample(i int) []string {
	at := time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).In(seoul)
	if i%3 == 0 {
		return []string{fmt.Sprint(i), "", "", "", ""}
	}
	return []string{fmt.Sprint(i), fmt.Sprintf("김민지 <%d> & \"co\"", i), fmt.Sprint(i%2 == 0), at.Format("2006-01-02 15:04:05"), " padded "}
}

func writeSample(rw *RowWriter, i int) {
	rec := sample(i)
	rw.StartRow()
	rw.Int(int64(i))
	if rec[1] == "" {
		rw.Empty()
		rw.Empty()
		rw.Empty()
		rw.Empty()
	} else {
		rw.Text(rec[1])
		rw.Bool(i%2 == 0)
		rw.Time(time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute).In(seoul))
		rw.Text(rec[4])
	}
	rw.EndRow()
}

// memPart is rows [from, to) as an in-memory part.
func memPart(t testing.TB, from, to int) Part {
	t.Helper()
	var buf bytes.Buffer
	rw, err := NewRowWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		writeSample(rw, i)
	}
	seg, err := rw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	return Part{Segment: seg, Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// verifyZip reads every entry to its end, which checks each CRC-32.
func verifyZip(t *testing.T, b []byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || uint64(n) != f.UncompressedSize64 {
			t.Fatalf("%s: %d of %d bytes: %v", f.Name, n, f.UncompressedSize64, err)
		}
	}
}

// TestWorkbookReadsBack: parts of 7, 7 and 8 rows in sheets of 9 data rows
// (so two parts are split), read back cell by cell with excelize.
func TestWorkbookReadsBack(t *testing.T) {
	ctx := context.Background()
	parts := []Part{memPart(t, 1, 8), memPart(t, 8, 15), {}, memPart(t, 15, 23)}
	var out bytes.Buffer
	n, err := Write(ctx, &out, cols, parts, 10, time.Time{})
	if err != nil || n != 22 {
		t.Fatalf("write: %d rows, %v", n, err)
	}
	verifyZip(t, out.Bytes())
	x, err := excelize.OpenReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if got := strings.Join(x.GetSheetList(), ","); got != "Sheet1,Sheet2,Sheet3" {
		t.Fatalf("sheets %s, want 9 + 9 + 4 rows in three", got)
	}
	i := 1
	for _, sheet := range x.GetSheetList() {
		rows, err := x.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(rows[0], "|") != "id|name|ok|at (Asia/Seoul)|note" {
			t.Fatalf("%s header %v", sheet, rows[0])
		}
		for _, row := range rows[1:] {
			want := strings.TrimRight(strings.Join(sample(i), "|"), "|")
			if got := strings.ReplaceAll(strings.Join(row, "|"), "TRUE", "true"); strings.ReplaceAll(got, "FALSE", "false") != want {
				t.Fatalf("%s row %d: %q, want %q", sheet, i, row, want)
			}
			i++
		}
		if w, _ := x.GetColWidth(sheet, "D"); w != 28 {
			t.Fatalf("%s column D width %v", sheet, w)
		}
	}
	if i != 23 {
		t.Fatalf("read %d rows back, want 22", i-1)
	}
	style, _ := x.GetCellStyle("Sheet2", "B1")
	if s, err := x.GetStyle(style); err != nil || s.Font == nil || !s.Font.Bold {
		t.Fatalf("header style %+v %v, want bold", s, err)
	}
	if typ, _ := x.GetCellType("Sheet1", "D2"); typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
		t.Fatalf("time cell type %v, want a number (a date)", typ)
	}
}

// TestWorkbookWithoutRows: no parts make one sheet with the header alone.
func TestWorkbookWithoutRows(t *testing.T) {
	var out bytes.Buffer
	n, err := Write(context.Background(), &out, cols, nil, MaxRows, time.Time{})
	if err != nil || n != 0 {
		t.Fatalf("%d rows, %v", n, err)
	}
	verifyZip(t, out.Bytes())
	x, err := excelize.OpenReader(bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rows, _ := x.GetRows("Sheet1")
	if len(x.GetSheetList()) != 1 || len(rows) != 1 || rows[0][0] != "id" {
		t.Fatalf("sheets %v, rows %v", x.GetSheetList(), rows)
	}
}

// TestWorkbookZip64: a sheet past 4 GiB uncompressed (one 64 MiB part of
// wide rows, written 70 times) gets zip64 sizes that archive/zip reads
// back, CRC included.
func TestWorkbookZip64(t *testing.T) {
	if testing.Short() {
		t.Skip("inflates 4.4 GiB")
	}
	var buf bytes.Buffer
	rw, err := NewRowWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	wide := strings.Repeat("가나다라마바사아자차", 1000) // 30 kB
	for rw.size+int64(len(rw.buf)) < 64<<20 {
		rw.StartRow()
		rw.Int(1)
		rw.Text(wide)
		rw.EndRow()
	}
	seg, err := rw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	part := Part{Segment: seg, Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
	parts := make([]Part, 70)
	for i := range parts {
		parts[i] = part
	}
	path := filepath.Join(t.TempDir(), "big.xlsx")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Write(context.Background(), f, cols[:2], parts, MaxRows, time.Time{})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n != 70*seg.Rows {
		t.Fatalf("%d rows, %v", n, err)
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		if zf.Name != "xl/worksheets/sheet1.xml" {
			continue
		}
		if zf.UncompressedSize64 <= 1<<32 {
			t.Fatalf("sheet is %d bytes, want past 4 GiB", zf.UncompressedSize64)
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || uint64(got) != zf.UncompressedSize64 {
			t.Fatalf("inflated %d of %d: %v", got, zf.UncompressedSize64, err)
		}
		return
	}
	t.Fatal("no sheet1.xml")
}

// TestWorkbookOpensInLibreOffice converts the workbook to CSV with
// LibreOffice (when soffice is installed) and compares every cell.
func TestWorkbookOpensInLibreOffice(t *testing.T) {
	var out bytes.Buffer
	if _, err := Write(context.Background(), &out, cols, []Part{memPart(t, 1, 40), memPart(t, 40, 61)}, MaxRows, time.Time{}); err != nil {
		t.Fatal(err)
	}
	recs, ok := testenv.LibreOfficeCSV(t, out.Bytes())
	if !ok {
		t.Skip("LibreOffice is not installed (apt-get install libreoffice-calc-nogui)")
	}
	if len(recs) != 61 || strings.Join(recs[0], "|") != "id|name|ok|at (Asia/Seoul)|note" {
		t.Fatalf("%d rows, header %v", len(recs), recs[0])
	}
	for i := 1; i < 61; i++ {
		got := strings.ReplaceAll(strings.ReplaceAll(strings.Join(recs[i], "|"), "TRUE", "true"), "FALSE", "false")
		if want := strings.Join(sample(i), "|"); got != want {
			t.Fatalf("row %d: %q, want %q", i, got, want)
		}
	}
}

// BenchmarkDeflate compares the standard library's deflate with
// klauspost/compress's (the one RowWriter uses) at BestSpeed on 5,000
// export rows of SpreadsheetML, reporting the output/input ratio:
//
//	go test -run '^$' -bench Deflate ./internal/workbook/
func BenchmarkDeflate(b *testing.B) {
	var rows bytes.Buffer
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&rows, `<row><c t="n"><v>%d</v></c><c t="inlineStr"><is><t>회원 %d</t></is></c><c t="inlineStr"><is><t>COMPLETED</t></is></c><c t="b"><v>1</v></c><c s="2"><v>46350.%06d</v></c><c/></row>`,
			100000+i, i%1000, i*37%1000000)
	}
	data := rows.Bytes()
	for _, c := range []struct {
		name string
		new  func(io.Writer) (io.WriteCloser, error)
	}{
		{"stdlib", func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) }},
		{"klauspost", func(w io.Writer) (io.WriteCloser, error) { return kflate.NewWriter(w, kflate.BestSpeed) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				out.Reset()
				zw, _ := c.new(&out)
				_, _ = zw.Write(data)
				_ = zw.Close()
			}
			b.ReportMetric(float64(out.Len())/float64(len(data)), "ratio")
		})
	}
}
