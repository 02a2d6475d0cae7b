package tasks

// An export partition reads its rows with COPY: Postgres writes the CSV
// itself (the part's payload is its bytes, the key column taken off), and
// for XLSX the text format, which the partition parses into cells. No row
// is scanned into a struct.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// copyRows reads up to limit rows of export x with keys in [from, to), in
// key order, by COPY (SELECT …) TO STDOUT on one of db's connections.
// sizeHint is about how many bytes COPY will write (0: unknown): the
// buffer takes them at once instead of growing by doubling.
func copyRows(ctx context.Context, db bun.IDB, x loadedExport, from, to int64, limit, sizeHint int) ([]exportRow, error) {
	csv := x.export.Format == "csv"
	k := x.kind
	q := k.where(db.NewSelect().TableExpr(k.from), x.filter).ColumnExpr(k.selectList(csv)).
		Where("? >= ? AND ? < ?", bun.Safe(k.keyCol()), from, bun.Safe(k.keyCol()), to).
		OrderExpr("? ASC", bun.Safe(k.keyCol())).Limit(int64(limit))
	format := "text"
	if csv {
		format = "csv"
	}
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	if err := copyTo(ctx, db, &buf, "COPY ("+q.String()+") TO STDOUT WITH (FORMAT "+format+")"); err != nil {
		return nil, fmt.Errorf("read export rows: %w", err)
	}
	if csv {
		return splitCSV(buf.Bytes(), k.types)
	}
	return splitText(buf.Bytes())
}

// copyTo runs a COPY … TO STDOUT statement on a connection of db (a
// *bun.DB on the pgx driver) into w.
func copyTo(ctx context.Context, db bun.IDB, w io.Writer, sql string) error {
	bdb, ok := db.(*bun.DB)
	if !ok {
		return errors.New("COPY needs a *bun.DB")
	}
	conn, err := bdb.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("COPY needs the pgx driver, not %T", dc)
		}
		_, err := c.Conn().PgConn().CopyTo(ctx, w, sql)
		return err
	})
}

// splitCSV cuts COPY's CSV into rows: the key (the first field, digits)
// and the rest of the line with its newline, as Postgres wrote it but for
// the cells typed "time" in types, which become RFC 3339 (appendRFC3339).
// A newline inside a quoted field does not end a row. The lines lie one
// after the other in one buffer, which putPart stores without a copy:
// never append to one.
func splitCSV(b []byte, types []string) ([]exportRow, error) {
	n, times := bytes.Count(b, []byte{'\n'}), 0
	for _, t := range types {
		if t == "time" {
			times++
		}
	}
	rows := make([]exportRow, 0, n)
	out := make([]byte, 0, len(b)+n*times) // each time cell grows by its Z
	for len(b) > 0 {
		comma := bytes.IndexByte(b, ',')
		if comma <= 0 {
			return nil, fmt.Errorf("read export rows: a COPY line without its key: %.40q", b)
		}
		id, err := strconv.ParseInt(string(b[:comma]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read export rows: key %q: %w", b[:comma], err)
		}
		b = b[comma+1:]
		start := len(out)
		for i := 0; ; i++ {
			end := csvFieldEnd(b)
			if end < 0 {
				return nil, errors.New("read export rows: the last COPY line has no end")
			}
			if i < len(types) && types[i] == "time" {
				out = appendRFC3339(out, b[:end])
			} else {
				out = append(out, b[:end]...)
			}
			out = append(out, b[end])
			last := b[end] == '\n'
			b = b[end+1:]
			if last {
				break
			}
		}
		rows = append(rows, exportRow{ID: id, Line: out[start:]})
	}
	return rows, nil
}

// csvFieldEnd is the index in b of the comma or newline that ends the CSV
// field b starts with (a quoted field may hold both; a doubled quote
// inside it is a quote), or -1 when there is none.
func csvFieldEnd(b []byte) int {
	i := 0
	if len(b) > 0 && b[0] == '"' {
		for i = 1; ; i++ {
			q := bytes.IndexByte(b[i:], '"')
			if q < 0 {
				return -1
			}
			i += q + 1
			if i == len(b) || b[i] != '"' {
				break
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] == ',' || b[i] == '\n' {
			return i
		}
	}
	return -1
}

// appendRFC3339 appends to out a time cell as COPY wrote it in DateStyle
// ISO ("2026-11-24 01:00:00", maybe with a fraction; see utcTime) as
// RFC 3339 in UTC to the second ("2026-11-24T01:00:00Z"). An empty cell
// (NULL), and one in another form (BC, past year 9999, infinity), is
// appended as it is.
func appendRFC3339(out, f []byte) []byte {
	if !isoWallTime(f) {
		return append(out, f...)
	}
	out = append(out, f[:10]...)
	out = append(out, 'T')
	out = append(out, f[11:19]...)
	return append(out, 'Z')
}

// isoWallTime reports whether f is "YYYY-MM-DD HH:MM:SS", maybe followed
// by a fraction: a timestamp COPY writes in DateStyle ISO.
func isoWallTime(f []byte) bool {
	if len(f) < 19 || (len(f) > 19 && f[19] != '.') {
		return false
	}
	for i, c := range f[:19] {
		switch i {
		case 4, 7:
			if c != '-' {
				return false
			}
		case 10:
			if c != ' ' {
				return false
			}
		case 13, 16:
			if c != ':' {
				return false
			}
		default:
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// parseCellTime reads a time cell: COPY's DateStyle ISO wall time in UTC
// (see utcTime), to the second, or RFC 3339 (cells given by tests and
// tools).
func parseCellTime(v []byte) (time.Time, bool) {
	if isoWallTime(v) {
		d := func(i, n int) int {
			x := 0
			for _, c := range v[i : i+n] {
				x = x*10 + int(c-'0')
			}
			return x
		}
		return time.Date(d(0, 4), time.Month(d(5, 2)), d(8, 2), d(11, 2), d(14, 2), d(17, 2), 0, time.UTC), true
	}
	t, err := time.Parse(time.RFC3339, string(v))
	return t, err == nil
}

// parseCellInt reads an int cell's decimal digits (with a sign); ok is
// false for anything else or past int64. Up to 18 digits it needs no
// string (strconv's), which cost an allocation a cell.
func parseCellInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) > 18 {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if neg {
			n = -n
		}
		return n, err == nil
	}
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// splitText cuts COPY's text format into rows: a line a row, the key its
// first field; the rest of the line (tab-separated fields, \N for NULL,
// backslash escapes) is kept as it is, for xlsxRows to parse as it writes
// the cells, so a chunk holds its COPY bytes and no string per cell.
func splitText(b []byte) ([]exportRow, error) {
	rows := make([]exportRow, 0, bytes.Count(b, []byte{'\n'}))
	for len(b) > 0 {
		nl := bytes.IndexByte(b, '\n')
		if nl < 0 {
			return nil, errors.New("read export rows: the last COPY line has no end")
		}
		line := b[:nl]
		b = b[nl+1:]
		tab := bytes.IndexByte(line, '\t')
		if tab <= 0 {
			return nil, fmt.Errorf("read export rows: a COPY line without its key: %.40q", line)
		}
		id, err := strconv.ParseInt(string(line[:tab]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read export rows: key %q: %w", line[:tab], err)
		}
		rows = append(rows, exportRow{ID: id, Line: line[tab+1:]})
	}
	return rows, nil
}

// textCells calls cell with each field of a COPY text-format line, in
// order, unescaped (a NULL is empty). A field is the line's own bytes when
// it has no escape, else scratch's: valid until the next call only.
func textCells(line []byte, cell func(i int, v []byte)) {
	var scratch []byte
	for i := 0; ; i++ {
		tab := bytes.IndexByte(line, '\t')
		if tab < 0 {
			cell(i, unescapeText(line, &scratch))
			return
		}
		cell(i, unescapeText(line[:tab], &scratch))
		line = line[tab+1:]
	}
}

// unescapeText reads one field of COPY's text format: f itself when it
// holds no backslash, else its unescaped bytes in *scratch.
func unescapeText(f []byte, scratch *[]byte) []byte {
	if len(f) == 2 && f[0] == '\\' && f[1] == 'N' {
		return nil
	}
	if bytes.IndexByte(f, '\\') < 0 {
		return f
	}
	out := (*scratch)[:0]
	for i := 0; i < len(f); i++ {
		if f[i] != '\\' || i+1 == len(f) {
			out = append(out, f[i])
			continue
		}
		i++
		switch f[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'v':
			out = append(out, '\v')
		default:
			out = append(out, f[i]) // \\ and any other escaped byte
		}
	}
	*scratch = out
	return out
}
