// Package workbook writes XLSX workbooks whose sheets are assembled from
// row segments compressed elsewhere (each export partition deflates its own
// rows), so writing the workbook is a copy: the segments' deflate bytes
// are concatenated into each sheet's zip entry, their CRC-32s combined and
// their sizes summed (zip64 when past 4 GiB). Only a segment that
// straddles a sheet's row limit is inflated and split.
package workbook

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// dosEpoch is zip's first date: the entries' modification time when Write
// is given none.
var dosEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxRows is a sheet's row limit in Excel, the header row included.
const MaxRows = 1_048_576

// Column is a sheet column: its header and width in characters.
type Column struct {
	Name  string
	Width float64
}

// Part is a stored segment: what it holds and how to read its deflate
// bytes.
type Part struct {
	Segment
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// ErrCorruptPart reports a part whose bytes do not match its description.
var ErrCorruptPart = errors.New("workbook: corrupt part")

// Write writes a workbook to w: the parts' rows in order, sheets of at
// most maxRows rows (header included) named Sheet1, Sheet2…, each with the
// bold header row frozen at the top and the columns' widths, every entry
// stamped modified (zero: zip's first date). The same rows and time make
// the same bytes. It returns the number of data rows.
func Write(ctx context.Context, w io.Writer, cols []Column, parts []Part, maxRows int64, modified time.Time) (int64, error) {
	if modified.IsZero() {
		modified = dosEpoch
	}
	if maxRows < 2 {
		return 0, fmt.Errorf("workbook: maxRows %d leaves no room for data", maxRows)
	}
	sheets, err := plan(ctx, parts, maxRows-1)
	if err != nil {
		return 0, err
	}
	zw := zip.NewWriter(w)
	if err := writeFixed(zw, len(sheets), modified); err != nil {
		return 0, err
	}
	var rows int64
	for i, sheet := range sheets {
		n, err := writeSheet(ctx, zw, i+1, cols, sheet, modified)
		if err != nil {
			return rows, err
		}
		rows += n
	}
	if err := zw.Close(); err != nil {
		return rows, fmt.Errorf("workbook: %w", err)
	}
	return rows, nil
}

// plan deals the parts into sheets of at most per data rows, splitting a
// part that straddles a sheet's end. There is always at least one sheet.
func plan(ctx context.Context, parts []Part, per int64) ([][]Part, error) {
	sheets := [][]Part{nil}
	var used int64
	for _, p := range parts {
		for p.Rows > 0 {
			if used == per {
				sheets = append(sheets, nil)
				used = 0
			}
			if used+p.Rows <= per {
				sheets[len(sheets)-1] = append(sheets[len(sheets)-1], p)
				used += p.Rows
				break
			}
			head, tail, err := split(ctx, p, per-used)
			if err != nil {
				return nil, err
			}
			sheets[len(sheets)-1] = append(sheets[len(sheets)-1], head)
			used = per
			p = tail
		}
	}
	return sheets, nil
}

// split inflates p and re-deflates it as its first n rows and the rest,
// both held in memory (a part is one chunk's rows).
func split(ctx context.Context, p Part, n int64) (Part, Part, error) {
	rc, err := p.Open(ctx)
	if err != nil {
		return Part{}, Part{}, err
	}
	defer rc.Close()
	// The segment has no final block; one empty final block ends it.
	fr := flate.NewReader(io.MultiReader(rc, bytes.NewReader([]byte{0x03, 0x00})))
	defer fr.Close()
	xml, err := io.ReadAll(fr)
	if err != nil || int64(len(xml)) != p.Size {
		return Part{}, Part{}, fmt.Errorf("%w: %d of %d bytes inflated: %v", ErrCorruptPart, len(xml), p.Size, err)
	}
	cut := 0
	for i := int64(0); i < n; i++ {
		j := bytes.Index(xml[cut:], []byte("</row>"))
		if j < 0 {
			return Part{}, Part{}, fmt.Errorf("%w: %d rows, want %d", ErrCorruptPart, i, p.Rows)
		}
		cut += j + len("</row>")
	}
	head, err := inMemory(xml[:cut], n)
	if err != nil {
		return Part{}, Part{}, err
	}
	tail, err := inMemory(xml[cut:], p.Rows-n)
	return head, tail, err
}

// inMemory deflates rows XML into a part held in memory.
func inMemory(xml []byte, rows int64) (Part, error) {
	var buf bytes.Buffer
	rw, err := NewRowWriter(&buf, flate.BestSpeed)
	if err != nil {
		return Part{}, err
	}
	rw.buf = append(rw.buf, xml...)
	seg, err := rw.Finish()
	if err != nil {
		return Part{}, err
	}
	seg.Rows = rows
	b := buf.Bytes()
	return Part{Segment: seg, Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}, nil
}

// writeSheet writes one sheet's entry: the deflated head (XML prologue,
// columns, header row), the parts' bytes as they are, and the deflated
// tail, under the combined CRC and summed sizes.
func writeSheet(ctx context.Context, zw *zip.Writer, n int, cols []Column, parts []Part, modified time.Time) (int64, error) {
	var headBuf, tailBuf bytes.Buffer
	head, err := sheetHead(&headBuf, cols)
	if err != nil {
		return 0, err
	}
	tw, err := NewRowWriter(&tailBuf, flate.BestSpeed)
	if err != nil {
		return 0, err
	}
	tw.raw(`</sheetData></worksheet>`)
	tail, err := tw.finishFinal()
	if err != nil {
		return 0, err
	}
	crc, size, compressed, rows := head.CRC, head.Size, head.Compressed, int64(0)
	for _, p := range parts {
		crc = CRC32Combine(crc, p.CRC, p.Size)
		size += p.Size
		compressed += p.Compressed
		rows += p.Rows
	}
	crc = CRC32Combine(crc, tail.CRC, tail.Size)
	fh := &zip.FileHeader{Name: fmt.Sprintf("xl/worksheets/sheet%d.xml", n), Method: zip.Deflate,
		CRC32: crc, UncompressedSize64: uint64(size + tail.Size), CompressedSize64: uint64(compressed + tail.Compressed),
		Flags: 0x8} // sizes (8 bytes each when zip64) in a data descriptor
	stamp(fh, modified)
	out, err := zw.CreateRaw(fh)
	if err != nil {
		return 0, fmt.Errorf("workbook: sheet %d: %w", n, err)
	}
	if _, err := out.Write(headBuf.Bytes()); err != nil {
		return 0, err
	}
	for _, p := range parts {
		if err := copyPart(ctx, out, p); err != nil {
			return 0, err
		}
	}
	_, err = out.Write(tailBuf.Bytes())
	return rows, err
}

// copyPart copies a part's deflate bytes, checking their length.
func copyPart(ctx context.Context, w io.Writer, p Part) error {
	rc, err := p.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return fmt.Errorf("workbook: copy part: %w", err)
	}
	if n != p.Compressed {
		return fmt.Errorf("%w: %d deflate bytes, want %d", ErrCorruptPart, n, p.Compressed)
	}
	return nil
}

// sheetHead deflates a sheet's opening: the frozen header pane, the
// column widths and the bold header row.
func sheetHead(w io.Writer, cols []Column) (Segment, error) {
	rw, err := NewRowWriter(w, flate.BestSpeed)
	if err != nil {
		return Segment{}, err
	}
	rw.raw(xmlHeader + `<worksheet xmlns="` + nsMain + `" xmlns:r="` + nsRel + `">` +
		`<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>` +
		`<sheetFormatPr defaultRowHeight="15"/><cols>`)
	for i, c := range cols {
		rw.raw(`<col min="` + strconv.Itoa(i+1) + `" max="` + strconv.Itoa(i+1) + `" width="` +
			strconv.FormatFloat(c.Width, 'f', -1, 64) + `" customWidth="1"/>`)
	}
	rw.raw(`</cols><sheetData>`)
	rw.StartRow()
	for _, c := range cols {
		rw.header(c.Name)
	}
	rw.EndRow()
	seg, err := rw.Finish()
	seg.Rows = 0 // the header is not data
	return seg, err
}

const (
	xmlHeader = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n"
	nsMain    = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
	nsRel     = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
	nsPkgRel  = "http://schemas.openxmlformats.org/package/2006/relationships"
	ctPrefix  = "application/vnd.openxmlformats-officedocument.spreadsheetml."
)

// styles: 0 default, 1 bold (the header), 2 a date and time.
const stylesXML = xmlHeader + `<styleSheet xmlns="` + nsMain + `">` +
	`<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>` +
	`<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font><font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>` +
	`<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>` +
	`<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>` +
	`<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>` +
	`<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>` +
	`<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>` +
	`<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>` +
	`<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>`

// writeFixed writes the package's small parts: content types, relations,
// the workbook with its sheets, and the styles.
func writeFixed(zw *zip.Writer, sheets int, modified time.Time) error {
	var types, rels, list strings.Builder
	types.WriteString(xmlHeader + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">` +
		`<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>` +
		`<Default Extension="xml" ContentType="application/xml"/>` +
		`<Override PartName="/xl/workbook.xml" ContentType="` + ctPrefix + `sheet.main+xml"/>` +
		`<Override PartName="/xl/styles.xml" ContentType="` + ctPrefix + `styles+xml"/>`)
	rels.WriteString(xmlHeader + `<Relationships xmlns="` + nsPkgRel + `">`)
	for i := 1; i <= sheets; i++ {
		n := strconv.Itoa(i)
		types.WriteString(`<Override PartName="/xl/worksheets/sheet` + n + `.xml" ContentType="` + ctPrefix + `worksheet+xml"/>`)
		rels.WriteString(`<Relationship Id="rId` + n + `" Type="` + nsRel + `/worksheet" Target="worksheets/sheet` + n + `.xml"/>`)
		list.WriteString(`<sheet name="Sheet` + n + `" sheetId="` + n + `" r:id="rId` + n + `"/>`)
	}
	types.WriteString(`</Types>`)
	rels.WriteString(`<Relationship Id="rId` + strconv.Itoa(sheets+1) + `" Type="` + nsRel + `/styles" Target="styles.xml"/></Relationships>`)
	files := []struct{ name, body string }{
		{"[Content_Types].xml", types.String()},
		{"_rels/.rels", xmlHeader + `<Relationships xmlns="` + nsPkgRel + `"><Relationship Id="rId1" Type="` + nsRel + `/officeDocument" Target="xl/workbook.xml"/></Relationships>`},
		{"xl/workbook.xml", xmlHeader + `<workbook xmlns="` + nsMain + `" xmlns:r="` + nsRel + `"><bookViews><workbookView/></bookViews><sheets>` + list.String() + `</sheets></workbook>`},
		{"xl/_rels/workbook.xml.rels", rels.String()},
		{"xl/styles.xml", stylesXML},
	}
	for _, f := range files {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			return fmt.Errorf("workbook: %s: %w", f.name, err)
		}
		if _, err := io.WriteString(fw, f.body); err != nil {
			return fmt.Errorf("workbook: %s: %w", f.name, err)
		}
	}
	return nil
}

// stamp sets fh's modification time as zip.Writer.CreateHeader does (MS-DOS
// date and time, and the extended timestamp readers prefer), which
// CreateRaw leaves to its caller.
func stamp(fh *zip.FileHeader, t time.Time) {
	fh.Modified = t
	if t.Before(dosEpoch) {
		t = dosEpoch
	}
	fh.ModifiedDate = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	fh.ModifiedTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	ext := make([]byte, 9)
	binary.LittleEndian.PutUint16(ext[0:], 0x5455) // extended timestamp
	binary.LittleEndian.PutUint16(ext[2:], 5)
	ext[4] = 1 // the modification time follows
	binary.LittleEndian.PutUint32(ext[5:], uint32(t.Unix()))
	fh.Extra = append(fh.Extra, ext...)
}
