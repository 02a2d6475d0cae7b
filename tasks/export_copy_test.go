package tasks

import (
	"strings"
	"testing"
	"time"
)

// TestSplitCSVRewritesTimes checks the CSV a partition stores from COPY:
// time cells turn from DateStyle ISO into RFC 3339 to the second, every
// other byte stays as Postgres wrote it (quoted commas, newlines and
// doubled quotes included), and forms that are not a plain wall time
// pass through.
func TestSplitCSVRewritesTimes(t *testing.T) {
	types := []string{"text", "time", "int", "time"}
	in := strings.Join([]string{
		`7,김민지,2026-11-24 01:00:00,3,2026-11-24 01:50:00.654321`,
		`8,"Kim, ""MJ""` + "\n" + `second line",2026-11-24 02:00:00.5,4,`,
		`9,,0044-03-15 00:00:00 BC,,infinity`,
		`10,"",12345-01-01 00:00:00,5,2026-01-01 00:00:00`,
	}, "\n") + "\n"
	rows, err := splitCSV([]byte(in), types)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id   int64
		line string
	}{
		{7, "김민지,2026-11-24T01:00:00Z,3,2026-11-24T01:50:00Z\n"},
		{8, `"Kim, ""MJ""` + "\n" + `second line",2026-11-24T02:00:00Z,4,` + "\n"},
		{9, ",0044-03-15 00:00:00 BC,,infinity\n"},
		{10, `"",12345-01-01 00:00:00,5,2026-01-01T00:00:00Z` + "\n"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		if rows[i].ID != w.id || string(rows[i].Line) != w.line {
			t.Errorf("row %d = %d %q, want %d %q", i, rows[i].ID, rows[i].Line, w.id, w.line)
		}
	}
	// The lines lie one after the other: a part stores them as they are.
	if got := string(csvLines(rows)); got != strings.Join([]string{want[0].line, want[1].line, want[2].line, want[3].line}, "") {
		t.Errorf("csvLines = %q", got)
	}
	if got := string(csvLines([]exportRow{rows[1], rows[0]})); got != want[1].line+want[0].line {
		t.Errorf("csvLines of rows out of order = %q", got)
	}

	for _, bad := range []string{"7,a,2026-11-24 01:00:00", `7,"open`, ",a\n", "x,a\n"} {
		if _, err := splitCSV([]byte(bad), types); err == nil {
			t.Errorf("splitCSV(%q): no error", bad)
		}
	}
}

// TestParseCellTime reads both forms a time cell comes in, to the second.
func TestParseCellTime(t *testing.T) {
	want := time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC)
	for _, v := range []string{"2026-11-24 01:02:03", "2026-11-24 01:02:03.999999", "2026-11-24T01:02:03Z", "2026-11-24T10:02:03+09:00"} {
		got, ok := parseCellTime([]byte(v))
		if !ok || !got.Equal(want) {
			t.Errorf("parseCellTime(%q) = %v, %v; want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"infinity", "0044-03-15 00:00:00 BC", "2026-11-24", ""} {
		if _, ok := parseCellTime([]byte(v)); ok {
			t.Errorf("parseCellTime(%q): ok", v)
		}
	}
}

// TestExportKindsKeyTable checks each kind's keyset table, which counts
// and partitions read without the joins: it is the FROM's first table,
// under the alias the key and the filter use.
func TestExportKindsKeyTable(t *testing.T) {
	for name, k := range exportKinds {
		if !strings.HasSuffix(k.keyFrom, " AS "+k.table) || strings.Count(k.keyFrom, " ") != 2 {
			t.Errorf("kind %s: keyset table %q, alias %q", name, k.keyFrom, k.table)
		}
	}
}

// TestTextCells reads COPY's text format as xlsxRows does: fields in
// order, \N and an empty field as empty, escapes undone.
func TestTextCells(t *testing.T) {
	var got []string
	textCells([]byte("김민지\tTab\\there\\\\x\t\\N\t\t2026-11-24 01:00:00\tline\\nnext"), func(i int, v []byte) {
		if i != len(got) {
			t.Fatalf("field %d after %d", i, len(got))
		}
		got = append(got, string(v))
	})
	want := []string{"김민지", "Tab\there\\x", "", "", "2026-11-24 01:00:00", "line\nnext"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("textCells = %q, want %q", got, want)
	}
}

// TestParseCellInt reads int cells as strconv would, past 18 digits too.
func TestParseCellInt(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "42": 42, "-7": -7, "123456789012345678": 123456789012345678,
		"9223372036854775807": 9223372036854775807, "-9223372036854775807": -9223372036854775807} {
		if got, ok := parseCellInt([]byte(v)); !ok || got != want {
			t.Errorf("parseCellInt(%q) = %d, %v", v, got, ok)
		}
	}
	for _, v := range []string{"", "-", "1.5", "12a", "9223372036854775808"} {
		if _, ok := parseCellInt([]byte(v)); ok {
			t.Errorf("parseCellInt(%q): ok", v)
		}
	}
}

// TestChunkShapeSpan sizes a read's key window from the last chunk:
// dense keys give about limit keys, sparse ones more, and keys too far
// apart to multiply stay a positive window instead of overflowing.
func TestChunkShapeSpan(t *testing.T) {
	for _, c := range []struct {
		s    chunkShape
		want int64
	}{
		{chunkShape{}, 22_500},
		{chunkShape{rows: 20_000, keys: 20_000}, 22_500},
		{chunkShape{rows: 2_000, keys: 14_000}, 157_500},
		{chunkShape{rows: 2, keys: 1 << 62}, 1 << 62}, // capped near math.MaxInt64/2
	} {
		if got := c.s.span(20_000); got != c.want {
			t.Errorf("%+v.span(20000) = %d, want %d", c.s, got, c.want)
		}
	}
}
