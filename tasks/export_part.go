package tasks

// Export part files: each chunk's rows, already in the export's final form
// (CSV text, or SpreadsheetML rows deflated), so the merge only copies.

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/internal/workbook"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
)

// A part file is a 40-byte header, then the payload:
//
//	"PBP2" | rows uint64 | uncompressed size uint64 | CRC-32 uint32 | payload length uint64 | truncated cells uint64
//
// (big-endian). A CSV payload is the rows' CSV as Postgres's COPY wrote it
// (formulas defused in the SELECT, no header); an XLSX payload is a
// workbook.Segment's deflate bytes. (PBP1 parts, from before the truncated
// count, are refused as bad parts: such an export is requested again.)
const partHeaderLen = 40

var partMagic = []byte("PBP2")

// errBadPart reports a part file the merge cannot use.
var errBadPart = errors.New("export: bad part file")

// partHeader describes a part file's payload.
type partHeader struct {
	rows, size int64
	crc        uint32
	payload    int64
	truncated  int64 // XLSX cells cut at Excel's limit
}

func (h partHeader) encode() []byte {
	b := make([]byte, partHeaderLen)
	copy(b, partMagic)
	binary.BigEndian.PutUint64(b[4:], uint64(h.rows))
	binary.BigEndian.PutUint64(b[12:], uint64(h.size))
	binary.BigEndian.PutUint32(b[20:], h.crc)
	binary.BigEndian.PutUint64(b[24:], uint64(h.payload))
	binary.BigEndian.PutUint64(b[32:], uint64(h.truncated))
	return b
}

func decodePartHeader(b []byte) (partHeader, error) {
	if len(b) != partHeaderLen || !bytes.Equal(b[:4], partMagic) {
		return partHeader{}, fmt.Errorf("%w: no PBP2 header", errBadPart)
	}
	return partHeader{rows: int64(binary.BigEndian.Uint64(b[4:])), size: int64(binary.BigEndian.Uint64(b[12:])),
		crc: binary.BigEndian.Uint32(b[20:]), payload: int64(binary.BigEndian.Uint64(b[24:])),
		truncated: int64(binary.BigEndian.Uint64(b[32:]))}, nil
}

// storePart writes a chunk's rows as a part, named by where its partition
// and the chunk start, so a redone chunk rewrites its own part whatever
// rows it finds.
func storePart(ctx context.Context, store storage.Store, sc *batch.StepContext, format string, k exportKind, rows []exportRow) error {
	id, _ := sc.Params.Int(ParamExportID, 0)
	key := fmt.Sprintf("exports/%d/parts/%s/%020d.part", id, partName(sc), uint64(sc.ChunkStart)^(1<<63))
	return putPart(ctx, store, key, format, k, rows)
}

// writePart stores rows given as cells (as the kind's text query gives
// them) as a part in format: what a partition's COPY would have read.
func writePart(ctx context.Context, store storage.Store, key, format string, k exportKind, cells [][]string) error {
	rows := make([]exportRow, len(cells))
	for i, rec := range cells {
		rows[i].Cells = rec
		if format == "csv" {
			var line bytes.Buffer
			w := csv.NewWriter(&line)
			if err := w.Write(defuseFormulas(slices.Clone(rec), k.types)); err != nil {
				return err
			}
			w.Flush()
			rows[i].Line = line.Bytes()
		}
	}
	return putPart(ctx, store, key, format, k, rows)
}

// putPart stores rows as a part: for CSV their lines as they are, for
// XLSX their cells as deflated SpreadsheetML.
func putPart(ctx context.Context, store storage.Store, key, format string, k exportKind, rows []exportRow) error {
	var body []byte
	var h partHeader
	if format == "xlsx" {
		var payload bytes.Buffer
		seg, truncated, err := xlsxRows(&payload, k, rows)
		if err != nil {
			return err
		}
		body = payload.Bytes()
		h = partHeader{rows: seg.Rows, size: seg.Size, crc: seg.CRC, payload: seg.Compressed, truncated: truncated}
	} else {
		body = csvLines(rows)
		n := int64(len(body))
		h = partHeader{rows: int64(len(rows)), size: n, crc: crc32.ChecksumIEEE(body), payload: n}
	}
	_, err := store.Put(ctx, key, io.MultiReader(bytes.NewReader(h.encode()), bytes.NewReader(body)))
	return err
}

// csvLines is the rows' CSV lines as one slice: the buffer splitCSV cut
// them from when they lie in it one after the other, else a copy.
func csvLines(rows []exportRow) []byte {
	n := 0
	for _, r := range rows {
		n += len(r.Line)
	}
	if len(rows) == 0 || cap(rows[0].Line) < n {
		return slices.Concat(lineSlices(rows)...)
	}
	all, off := rows[0].Line[:n], 0
	for _, r := range rows {
		if len(r.Line) > 0 && &all[off] != &r.Line[0] {
			return slices.Concat(lineSlices(rows)...)
		}
		off += len(r.Line)
	}
	return all
}

func lineSlices(rows []exportRow) [][]byte {
	s := make([][]byte, len(rows))
	for i, r := range rows {
		s[i] = r.Line
	}
	return s
}

// xlsxRows writes rows as typed SpreadsheetML cells into a deflate
// segment and says how many text cells were cut at Excel's limit. Excel
// cells have no time zone, so times are the gym's wall clock (Asia/Seoul)
// and their headers say so; CSV keeps RFC 3339 instants.
func xlsxRows(w io.Writer, k exportKind, rows []exportRow) (workbook.Segment, int64, error) {
	rw, err := workbook.NewRowWriter(w, flate.BestSpeed)
	if err != nil {
		return workbook.Segment{}, 0, err
	}
	for _, r := range rows {
		rw.StartRow()
		if r.Cells != nil {
			for i, v := range r.Cells {
				xlsxCell(rw, k.types[i], []byte(v))
			}
		} else {
			textCells(r.Line, func(i int, v []byte) { xlsxCell(rw, k.types[i], v) })
		}
		rw.EndRow()
	}
	seg, err := rw.Finish()
	return seg, rw.Truncated(), err
}

// xlsxCell writes one cell of type typ from its text v (empty: NULL).
func xlsxCell(rw *workbook.RowWriter, typ string, v []byte) {
	if len(v) == 0 {
		rw.Empty()
		return
	}
	switch typ {
	case "int":
		if n, ok := parseCellInt(v); ok {
			rw.Int(n)
			return
		}
	case "bool":
		rw.Bool(string(v) == "true")
		return
	case "time":
		if t, ok := parseCellTime(v); ok {
			rw.Time(t.In(models.Seoul))
			return
		}
	}
	rw.Text(string(v))
}

// defuseFormulas prefixes with ' every text cell a spreadsheet would take
// for a formula (starting with =, +, -, @, a tab or a CR), so a member
// named "=HYPERLINK(…)" is shown, not run, when an admin opens the CSV.
// Numbers and times are left alone. XLSX cells are typed and need no such
// care.
func defuseFormulas(rec, types []string) []string {
	for i, v := range rec {
		if i < len(types) && types[i] == "text" && v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			rec[i] = "'" + v
		}
	}
	return rec
}

// storedPart is a part file found by the merge, with its header.
type storedPart struct {
	key string
	partHeader
}

// readPartHeaders reads each part's header, checking it against the
// file's size.
func readPartHeaders(ctx context.Context, store storage.Store, infos []storage.Info) ([]storedPart, error) {
	parts := make([]storedPart, 0, len(infos))
	for _, info := range infos {
		f, err := store.Open(ctx, info.Key)
		if err != nil {
			return nil, err
		}
		b := make([]byte, partHeaderLen)
		_, err = io.ReadFull(f, b)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errBadPart, info.Key, err)
		}
		h, err := decodePartHeader(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", info.Key, err)
		}
		if h.payload != info.Size-partHeaderLen {
			return nil, fmt.Errorf("%w: %s holds %d payload bytes, its header says %d", errBadPart, info.Key, info.Size-partHeaderLen, h.payload)
		}
		parts = append(parts, storedPart{info.Key, h})
	}
	return parts, nil
}

// openPayload opens a part's payload (the file past its header).
func openPayload(ctx context.Context, store storage.Store, p storedPart) (io.ReadCloser, error) {
	f, err := store.Open(ctx, p.key)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(partHeaderLen, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open part %s: %w", p.key, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, p.payload), f}, nil
}
