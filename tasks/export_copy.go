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

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// copyRows reads up to limit rows of export x with keys in [from, to), in
// key order, by COPY (SELECT …) TO STDOUT on one of db's connections.
func copyRows(ctx context.Context, db bun.IDB, x loadedExport, from, to int64, limit int) ([]exportRow, error) {
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
	if err := copyTo(ctx, db, &buf, "COPY ("+q.String()+") TO STDOUT WITH (FORMAT "+format+")"); err != nil {
		return nil, fmt.Errorf("read export rows: %w", err)
	}
	if csv {
		return splitCSV(buf.Bytes())
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
// and the rest of the line with its newline, as Postgres wrote it. A
// newline inside a quoted field does not end a row.
func splitCSV(b []byte) ([]exportRow, error) {
	rows := make([]exportRow, 0, bytes.Count(b, []byte{'\n'}))
	for len(b) > 0 {
		comma := bytes.IndexByte(b, ',')
		if comma <= 0 {
			return nil, fmt.Errorf("read export rows: a COPY line without its key: %.40q", b)
		}
		id, err := strconv.ParseInt(string(b[:comma]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("read export rows: key %q: %w", b[:comma], err)
		}
		end, quoted := comma+1, false
		for ; end < len(b); end++ {
			switch c := b[end]; {
			case c == '"':
				quoted = !quoted // a doubled quote toggles twice
			case c == '\n' && !quoted:
				goto row
			}
		}
		return nil, errors.New("read export rows: the last COPY line has no end")
	row:
		rows = append(rows, exportRow{ID: id, Line: b[comma+1 : end+1]})
		b = b[end+1:]
	}
	return rows, nil
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
// order, unescaped (a NULL is "").
func textCells(line []byte, cell func(i int, v string)) {
	for i := 0; ; i++ {
		tab := bytes.IndexByte(line, '\t')
		if tab < 0 {
			cell(i, unescapeText(line))
			return
		}
		cell(i, unescapeText(line[:tab]))
		line = line[tab+1:]
	}
}

// unescapeText reads one field of COPY's text format.
func unescapeText(f []byte) string {
	if len(f) == 2 && f[0] == '\\' && f[1] == 'N' {
		return ""
	}
	if bytes.IndexByte(f, '\\') < 0 {
		return string(f)
	}
	out := make([]byte, 0, len(f))
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
	return string(out)
}
