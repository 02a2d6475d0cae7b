package tasks

// The export merge: the parts, in key order, into one CSV or XLSX file,
// by copying their bytes (the partitions did the encoding and deflating).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/internal/workbook"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
)

// errMissingRows reports parts that hold another number of rows than the
// partitions wrote: the merge would store a file that misses rows (or
// holds stale ones), so the step fails with the reason instead.
var errMissingRows = errors.New("export: the parts do not hold the rows the partitions wrote")

// mergeExport joins the parts in key order into the export's file, stores
// it and records size, SHA-256 and rows. written is how many rows the
// partitions committed; the parts must hold exactly that many. It runs
// outside any transaction and may run twice, one after the other or at
// the same time: it never deletes a part (a later step does, once the
// merge has committed), a repeat after success finds the recorded file in
// place and leaves it alone, and two at once write the same bytes under
// the same key.
func mergeExport(ctx context.Context, store storage.Store, db bun.IDB, e *models.Export, k exportKind, written int64) (int64, error) {
	if done, err := merged(ctx, store, db, e.ID, written); err != nil || done {
		return written, err
	}
	infos, err := store.List(ctx, partsPrefix(e.ID))
	if err != nil {
		return 0, err
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	parts, err := readPartHeaders(ctx, store, infos)
	if err != nil {
		return 0, err
	}
	var inParts, truncated int64
	for _, p := range parts {
		inParts += p.rows
		truncated += p.truncated
	}
	if inParts != written {
		return 0, fmt.Errorf("%w: %d parts hold %d rows, the partitions wrote %d", errMissingRows, len(parts), inParts, written)
	}
	key := fmt.Sprintf("exports/%d/%s-%d.%s", e.ID, e.Kind, e.ID, e.Format)
	var size int64
	var sum string
	if c, ok := store.(storage.Composer); ok && e.Format == "csv" {
		// Assembled by the store (S3: the parts copied on the server); no
		// SHA-256, which would read the whole file once more.
		size, err = c.Compose(ctx, key, csvPieces(parts, k, e.BOM))
	} else {
		size, sum, err = storeMerged(ctx, store, key, func(w io.Writer) (int64, error) {
			if e.Format == "csv" {
				return mergeCSV(ctx, store, parts, k, w, e.BOM)
			}
			return mergeXLSX(ctx, store, parts, k, w, xlsxMaxRows, e.CreatedAt)
		})
	}
	if err != nil {
		return 0, fmt.Errorf("store export %d: %w", e.ID, err)
	}
	// total_rows was counted before the parts were read; rows added or
	// changed since make the exact count the one the file holds.
	if _, err := exec(ctx, db, "record export file", `UPDATE export SET file_key = ?, size_bytes = ?, sha256 = ?, written_rows = ?,
		total_rows = ?, truncated_cells = ?, modified_at = now() WHERE id = ? AND written_rows <= ?`, key, size, nullIfEmpty(sum), written, written, truncated, e.ID, written); err != nil {
		return 0, err
	}
	return written, nil
}

// merged reports whether export id already records its merged file with
// written rows, and the file is in the store at its recorded size.
func merged(ctx context.Context, store storage.Store, db bun.IDB, id, written int64) (bool, error) {
	var rec models.Export
	if err := db.NewSelect().Model(&rec).Column("file_key", "size_bytes", "written_rows").Where("id = ?", id).Scan(ctx); err != nil {
		return false, fmt.Errorf("load export %d: %w", id, err)
	}
	if rec.FileKey == nil || rec.SizeBytes == nil || rec.WrittenRows != written {
		return false, nil
	}
	info, err := store.Stat(ctx, *rec.FileKey)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil && info.Size == *rec.SizeBytes, err
}

// storeMerged stores at key what write writes, returning its size and
// SHA-256.
func storeMerged(ctx context.Context, store storage.Store, key string, write func(io.Writer) (int64, error)) (int64, string, error) {
	pr, pw := io.Pipe()
	h := sha256.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bw := bufio.NewWriterSize(pw, 1<<20) // through the pipe in 1 MiB pieces
		_, err := write(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	size, err := store.Put(ctx, key, io.TeeReader(pr, h))
	// A store that gave up before the end leaves the writer blocked on the
	// pipe: closing the reading side makes its next write fail, and it ends.
	if err != nil {
		pr.CloseWithError(err)
	}
	<-done
	if err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// csvPieces is a CSV export's file as pieces for a Composer: the BOM and
// header, then each part's payload where it is stored.
func csvPieces(parts []storedPart, k exportKind, bom bool) []storage.Piece {
	var head bytes.Buffer
	if bom {
		head.WriteString(utf8BOM)
	}
	cw := csv.NewWriter(&head)
	_ = cw.Write(k.columns) // into memory: no error
	cw.Flush()
	pieces := []storage.Piece{{Data: head.Bytes()}}
	for _, p := range parts {
		pieces = append(pieces, storage.Piece{Key: p.key, Offset: partHeaderLen, Length: p.payload})
	}
	return pieces
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// partsPrefix is where export id's part files are stored.
func partsPrefix(id int64) string { return fmt.Sprintf("exports/%d/parts/", id) }

// utf8BOM starts a CSV that Excel on Korean Windows reads as UTF-8.
const utf8BOM = "\uFEFF"

// mergeCSV writes the BOM (when bom), the header, then each part's CSV as
// it is.
func mergeCSV(ctx context.Context, store storage.Store, stored []storedPart, k exportKind, w io.Writer, bom bool) (int64, error) {
	if bom {
		if _, err := io.WriteString(w, utf8BOM); err != nil {
			return 0, err
		}
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(k.columns); err != nil {
		return 0, err
	}
	if cw.Flush(); cw.Error() != nil {
		return 0, cw.Error()
	}
	var rows int64
	for _, p := range stored {
		if err := copyPayload(ctx, store, p, w); err != nil {
			return rows, err
		}
		rows += p.rows
	}
	return rows, nil
}

func copyPayload(ctx context.Context, store storage.Store, p storedPart, w io.Writer) error {
	rc, err := openPayload(ctx, store, p)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err == nil && n != p.payload {
		err = fmt.Errorf("%w: %s: %d of %d bytes", errBadPart, p.key, n, p.payload)
	}
	return err
}

// mergeXLSX writes the workbook from the parts' deflated rows, maxRows
// rows a sheet (header included), rolling over to Sheet2, Sheet3…: a copy
// of their bytes, but for the one part that straddles each sheet's end.
func mergeXLSX(ctx context.Context, store storage.Store, stored []storedPart, k exportKind, w io.Writer, maxRows int, modified time.Time) (int64, error) {
	segs := make([]workbook.Part, len(stored))
	for i, p := range stored {
		segs[i] = workbook.Part{Segment: workbook.Segment{Rows: p.rows, Size: p.size, CRC: p.crc, Compressed: p.payload},
			Open: func(ctx context.Context) (io.ReadCloser, error) { return openPayload(ctx, store, p) }}
	}
	cols := make([]workbook.Column, len(k.columns))
	for i, c := range k.columns {
		cols[i] = workbook.Column{Name: c, Width: 14}
		if k.types[i] == "time" {
			cols[i] = workbook.Column{Name: c + " (" + models.Seoul.String() + ")", Width: 28}
		}
	}
	n, err := workbook.Write(ctx, w, cols, segs, int64(maxRows), modified)
	if errors.Is(err, workbook.ErrCorruptPart) {
		err = fmt.Errorf("%w: %w", errBadPart, err) // cleanup knows this one
	}
	return n, err
}
