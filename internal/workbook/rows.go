package workbook

import (
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"
)

// Style indexes of the workbook's styles.xml.
const (
	styleHeader = 1 // bold
	styleTime   = 2 // yyyy-mm-dd hh:mm:ss
)

// Segment describes a run of sheet rows stored as a raw deflate stream that
// ends on a sync flush (no final block), so segments concatenate into one
// valid stream.
type Segment struct {
	Rows       int64  // <row> elements
	Size       int64  // uncompressed bytes
	CRC        uint32 // CRC-32 (IEEE) of the uncompressed bytes
	Compressed int64  // deflate bytes
}

// RowWriter writes SpreadsheetML rows (no r attributes, inline strings, so
// a run of rows fits anywhere in a sheet) into a deflate segment.
type RowWriter struct {
	out  countWriter
	zw   *flate.Writer
	crc  uint32
	size int64
	rows int64
	cut  int64 // text cells cut at MaxCellChars
	buf  []byte
	err  error
}

// MaxCellChars is the most characters (UTF-16 code units, as Excel
// counts them) a cell holds in Excel.
const MaxCellChars = 32_767

// CutMarker ends a text cell cut at MaxCellChars, so a reader sees it was.
const CutMarker = "…[truncated]"

// Cut cuts s to at most MaxCellChars UTF-16 code units on a character
// boundary, ending it with CutMarker, and reports whether it did.
func Cut(s string) (string, bool) {
	if len(s) <= MaxCellChars { // at most one unit per byte
		return s, false
	}
	units, keep := 0, -1
	room := MaxCellChars - utf16Len(CutMarker)
	for i, r := range s {
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		if units+n > room && keep < 0 {
			keep = i
		}
		units += n
		if units > MaxCellChars {
			return s[:keep] + CutMarker, true
		}
	}
	return s, false
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// Truncated is how many text cells the writer cut at MaxCellChars.
func (rw *RowWriter) Truncated() int64 { return rw.cut }

// NewRowWriter writes a segment to w at the given flate level
// (flate.BestSpeed is what exports use). The compressor is
// klauspost/compress's, the same wire format as compress/flate's: on
// export rows at BestSpeed it runs 1.8× as fast for 12% more bytes
// (BenchmarkDeflate).
func NewRowWriter(w io.Writer, level int) (*RowWriter, error) {
	rw := &RowWriter{out: countWriter{w: w}}
	zw, err := flate.NewWriter(&rw.out, level)
	if err != nil {
		return nil, fmt.Errorf("row writer: %w", err)
	}
	rw.zw = zw
	return rw, nil
}

// StartRow begins a row.
func (rw *RowWriter) StartRow() { rw.buf = append(rw.buf, "<row>"...) }

// EndRow ends a row and passes it to the compressor.
func (rw *RowWriter) EndRow() {
	rw.buf = append(rw.buf, "</row>"...)
	rw.rows++
	if len(rw.buf) >= 32<<10 {
		rw.flushBuf()
	}
}

// Empty writes an empty cell, which keeps the next cells in their columns.
func (rw *RowWriter) Empty() { rw.buf = append(rw.buf, "<c/>"...) }

// Int writes a number cell.
func (rw *RowWriter) Int(n int64) {
	rw.buf = append(rw.buf, "<c><v>"...)
	rw.buf = strconv.AppendInt(rw.buf, n, 10)
	rw.buf = append(rw.buf, "</v></c>"...)
}

// Bool writes a TRUE/FALSE cell.
func (rw *RowWriter) Bool(b bool) {
	if b {
		rw.buf = append(rw.buf, `<c t="b"><v>1</v></c>`...)
	} else {
		rw.buf = append(rw.buf, `<c t="b"><v>0</v></c>`...)
	}
}

// Time writes t's wall clock (in t's location) as a date cell. Excel dates
// have no zone, so callers pick the location the reader expects.
func (rw *RowWriter) Time(t time.Time) {
	rw.buf = append(rw.buf, `<c s="2"><v>`...)
	rw.buf = strconv.AppendFloat(rw.buf, excelSerial(t), 'f', -1, 64)
	rw.buf = append(rw.buf, "</v></c>"...)
}

// Text writes an inline string cell.
// A text past Excel's MaxCellChars is cut (see Cut) and counted.
func (rw *RowWriter) Text(s string) {
	s, cut := Cut(s)
	if cut {
		rw.cut++
	}
	rw.text(s, 0)
}

// header writes a bold inline string cell.
func (rw *RowWriter) header(s string) { rw.text(s, styleHeader) }

func (rw *RowWriter) text(s string, style int) {
	rw.buf = append(rw.buf, `<c t="inlineStr"`...)
	if style != 0 {
		rw.buf = append(rw.buf, ` s="`...)
		rw.buf = strconv.AppendInt(rw.buf, int64(style), 10)
		rw.buf = append(rw.buf, '"')
	}
	if s != "" && (strings.IndexByte(" \t\n\r", s[0]) >= 0 || strings.IndexByte(" \t\n\r", s[len(s)-1]) >= 0) {
		rw.buf = append(rw.buf, `><is><t xml:space="preserve">`...)
	} else {
		rw.buf = append(rw.buf, `><is><t>`...)
	}
	rw.buf = appendEscaped(rw.buf, s)
	rw.buf = append(rw.buf, "</t></is></c>"...)
}

// raw writes XML as it is (the sheet's fixed parts).
func (rw *RowWriter) raw(s string) { rw.buf = append(rw.buf, s...) }

func (rw *RowWriter) flushBuf() {
	if rw.err != nil || len(rw.buf) == 0 {
		rw.buf = rw.buf[:0]
		return
	}
	rw.crc = crc32.Update(rw.crc, crc32.IEEETable, rw.buf)
	rw.size += int64(len(rw.buf))
	_, rw.err = rw.zw.Write(rw.buf)
	rw.buf = rw.buf[:0]
}

// Finish ends the segment with a sync flush and says what it holds.
func (rw *RowWriter) Finish() (Segment, error) {
	rw.flushBuf()
	if rw.err == nil {
		rw.err = rw.zw.Flush()
	}
	if rw.err != nil {
		return Segment{}, fmt.Errorf("write rows: %w", rw.err)
	}
	return Segment{Rows: rw.rows, Size: rw.size, CRC: rw.crc, Compressed: rw.out.n}, nil
}

// finishFinal ends the stream with its final block (the sheet's last
// segment).
func (rw *RowWriter) finishFinal() (Segment, error) {
	rw.flushBuf()
	if rw.err == nil {
		rw.err = rw.zw.Close()
	}
	if rw.err != nil {
		return Segment{}, fmt.Errorf("write rows: %w", rw.err)
	}
	return Segment{Rows: rw.rows, Size: rw.size, CRC: rw.crc, Compressed: rw.out.n}, nil
}

// excelEpoch is day 0 of Excel's 1900 date system (as Excel counts it,
// with its phantom 1900-02-29), 1899-12-30, in days from 1970-01-01.
const excelEpoch = -25569

// excelSerial is t's wall clock as days since excelEpoch (a whole number
// of days, then the time of day as a fraction).
func excelSerial(t time.Time) float64 {
	y, m, d := t.Date()
	hh, mm, ss := t.Clock()
	rest := time.Duration(hh*3600+mm*60+ss)*time.Second + time.Duration(t.Nanosecond())
	return float64(daysFromCivil(y, int(m), d)-excelEpoch) + float64(rest)/float64(24*time.Hour)
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil): no
// time.Duration, which ends 292 years after the epoch it counts from.
func daysFromCivil(y, m, d int) int {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// appendEscaped appends s as XML text: &, < and > escaped, characters XML
// 1.0 cannot hold (control characters other than tab, LF and CR, invalid
// UTF-8) replaced by U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '&' && c != '<' && c != '>' {
			i++
			continue
		}
		var repl string
		width := 1
		switch {
		case c == '&':
			repl = "&amp;"
		case c == '<':
			repl = "&lt;"
		case c == '>':
			repl = "&gt;"
		case c == '\t' || c == '\n':
			i++
			continue
		case c == '\r':
			repl = "&#13;"
		case c < 0x20:
			repl = "\uFFFD"
		default:
			r, w := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || w > 1 {
				if r == 0xFFFE || r == 0xFFFF {
					repl, width = "\uFFFD", w
					break
				}
				i += w
				continue
			}
			repl = "\uFFFD"
		}
		b = append(b, s[start:i]...)
		b = append(b, repl...)
		i += width
		start = i
	}
	return append(b, s[start:]...)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
