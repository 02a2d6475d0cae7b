package tasks

// The export merge: the parts, in key order, into one CSV or XLSX file,
// by copying their bytes (the partitions did the encoding and deflating).

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/internal/workbook"
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/storage"
)

// mergeExport joins the parts in key order into the export's file, stores
// it, records size, SHA-256 and rows, and deletes the parts. It runs outside
// any transaction; a repeat rewrites the same file.
func mergeExport(ctx context.Context, store storage.Store, db bun.IDB, e *models.Export, k exportKind) (int64, error) {
	prefix := fmt.Sprintf("exports/%d/parts/", e.ID)
	parts, err := store.List(ctx, prefix)
	if err != nil {
		return 0, err
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Key < parts[j].Key })
	key := fmt.Sprintf("exports/%d/%s-%d.%s", e.ID, e.Kind, e.ID, e.Format)
	pr, pw := io.Pipe()
	h := sha256.New()
	var rows int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var err error
		if e.Format == "csv" {
			rows, err = mergeCSV(ctx, store, parts, k, pw)
		} else {
			rows, err = mergeXLSX(ctx, store, parts, k, pw, xlsxMaxRows)
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
		return 0, fmt.Errorf("store export %d: %w", e.ID, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if _, err := exec(ctx, db, "record export file", `UPDATE export SET file_key = ?, size_bytes = ?, sha256 = ?, written_rows = ?, modified_at = now() WHERE id = ?`,
		key, size, sum, rows, e.ID); err != nil {
		return 0, err
	}
	for _, p := range parts {
		_ = store.Delete(ctx, p.Key)
	}
	return rows, nil
}

// mergeCSV writes the header, then each part's CSV as it is.
func mergeCSV(ctx context.Context, store storage.Store, parts []storage.Info, k exportKind, w io.Writer) (int64, error) {
	stored, err := readPartHeaders(ctx, store, parts)
	if err != nil {
		return 0, err
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
func mergeXLSX(ctx context.Context, store storage.Store, parts []storage.Info, k exportKind, w io.Writer, maxRows int) (int64, error) {
	stored, err := readPartHeaders(ctx, store, parts)
	if err != nil {
		return 0, err
	}
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
	n, err := workbook.Write(ctx, w, cols, segs, int64(maxRows))
	if errors.Is(err, workbook.ErrCorruptPart) {
		err = fmt.Errorf("%w: %w", errBadPart, err) // cleanup knows this one
	}
	return n, err
}
