package tasks

// The catalog of export kinds: their columns, the query that yields their
// rows as text, and the filter applied to them.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
)

// exportColumn is one column of an export: its header, how XLSX writes
// its cells (text, int, time, bool) and its SQL, NULL for an empty cell.
type exportColumn struct {
	name, typ, sql string
}

// exportKind describes one kind of export: its columns and its rows.
// Adding a kind is a list of columns and a FROM with its key's table
// alias: the readers (COPY, in CSV or in text for XLSX), the filter and
// the merge all derive from it.
type exportKind struct {
	table    string // the keyset table's alias
	from     string // FROM …: the keyset table with its alias, then its joins
	keyFrom  string // the keyset table with its alias, which the filter's columns are all from
	timeCol  string // what from/to filter
	statuses []string
	cols     []exportColumn
	columns  []string // the headers, from cols
	types    []string // the cell types, from cols
}

// kind builds an exportKind from its columns.
func kind(table, from, timeCol string, statuses []string, cols ...exportColumn) exportKind {
	keyFrom, _, _ := strings.Cut(from, " JOIN ")
	k := exportKind{table: table, from: from, keyFrom: keyFrom, timeCol: timeCol, statuses: statuses, cols: cols}
	for _, c := range cols {
		k.columns = append(k.columns, c.name)
		k.types = append(k.types, c.typ)
	}
	return k
}

// utcTime is SQL for a timestamp column as UTC wall time (a timestamp
// without time zone), which COPY writes in DateStyle ISO, as
// "2026-11-24 01:00:00" (with a fraction when there is one). That costs
// Postgres next to nothing, where to_char(…) into RFC 3339 more than
// doubled an export's read (1M bookings: 2.0 s against 0.87 s). CSV parts
// rewrite it as RFC 3339 on the byte stream (appendRFC3339); XLSX parses
// it (parseCellTime). NULL stays NULL: an empty cell.
func utcTime(col string) string {
	return "(" + col + " AT TIME ZONE 'UTC')"
}

var exportKinds = map[string]exportKind{
	"bookings": kind("b", "booking AS b JOIN users AS u ON u.id = b.user_id", "b.started_at",
		[]string{models.BookingReady, models.BookingCompleted, models.BookingCancelled},
		exportColumn{"id", "int", "b.id"}, exportColumn{"user_id", "int", "b.user_id"}, exportColumn{"user_name", "text", "u.name"},
		exportColumn{"pass_id", "int", "b.pass_id"}, exportColumn{"status", "text", "b.status"},
		exportColumn{"attended", "bool", "b.attended::text"}, exportColumn{"used_pass", "bool", "b.used_pass::text"},
		exportColumn{"started_at", "time", utcTime("b.started_at")}, exportColumn{"ended_at", "time", utcTime("b.ended_at")},
		exportColumn{"cancelled_at", "time", utcTime("b.cancelled_at")}),
	"passes": kind("p", "pass AS p JOIN users AS u ON u.id = p.user_id JOIN package AS k ON k.id = p.package_id", "p.started_at",
		[]string{models.PassReady, models.PassProgressed, models.PassExpired},
		exportColumn{"id", "int", "p.id"}, exportColumn{"user_id", "int", "p.user_id"}, exportColumn{"user_name", "text", "u.name"},
		exportColumn{"package", "text", "k.name"}, exportColumn{"status", "text", "p.status"},
		exportColumn{"remaining_count", "int", "p.remaining_count"},
		exportColumn{"started_at", "time", utcTime("p.started_at")}, exportColumn{"ended_at", "time", utcTime("p.ended_at")},
		exportColumn{"expired_at", "time", utcTime("p.expired_at")}),
	"statistics": kind("s", "statistics AS s", "s.statistics_at", nil,
		exportColumn{"statistics_at", "time", utcTime("s.statistics_at")}, exportColumn{"all_count", "int", "s.all_count"},
		exportColumn{"attended_count", "int", "s.attended_count"}, exportColumn{"cancelled_count", "int", "s.cancelled_count"}),
}

// formulaStart is SQL true when text x starts as a spreadsheet formula
// would: =, +, -, @, a tab or a CR.
const formulaStart = `left(%[1]s, 1) IN ('=', '+', '-', '@', chr(9), chr(13))`

// selectList is the SQL list of the kind's key and cells: for CSV every
// text cell a spreadsheet would take for a formula gets a leading ' (see
// defuseFormulas), so a member named "=HYPERLINK(…)" is shown, not run;
// XLSX cells are typed and need no such care.
func (k exportKind) selectList(csv bool) string {
	parts := []string{k.keyCol()}
	for _, c := range k.cols {
		expr := c.sql
		if csv && c.typ == "text" {
			expr = fmt.Sprintf("CASE WHEN "+formulaStart+" THEN chr(39) || %[1]s ELSE %[1]s END", c.sql)
		}
		parts = append(parts, expr)
	}
	return strings.Join(parts, ", ")
}

// exportRow is one row of an export: its key, and its line as COPY wrote
// it without the key (CSV for a CSV export, the text format for XLSX), or
// its cells (a NULL is "") where no COPY read it.
type exportRow struct {
	ID    int64
	Line  []byte
	Cells []string
}

func loadExport(ctx context.Context, db bun.IDB, sc *batch.StepContext) (*models.Export, exportKind, ExportFilter, error) {
	id, _ := sc.Params.Int(ParamExportID, 0)
	var e models.Export
	if err := db.NewSelect().Model(&e).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("load export %d: %w", id, err)
	}
	if e.Status == models.ExportExpired {
		// Its part files are gone: a restart cannot resume it.
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("export %d has expired and its files are removed; request it again", id)
	}
	var f ExportFilter
	if err := json.Unmarshal(e.Filter, &f); err != nil {
		return nil, exportKind{}, ExportFilter{}, fmt.Errorf("export %d filter: %w", id, err)
	}
	return &e, exportKinds[e.Kind], f, nil
}

// where applies an export's filter to a query over its kind.
func (k exportKind) where(q *bun.SelectQuery, f ExportFilter) *bun.SelectQuery {
	if f.From != nil {
		q = q.Where("? >= ?", bun.Safe(k.timeCol), *f.From)
	}
	if f.To != nil {
		q = q.Where("? < ?", bun.Safe(k.timeCol), *f.To)
	}
	if f.Status != "" {
		q = q.Where("?.status = ?", bun.Safe(k.table), f.Status)
	}
	if f.UserGroupID != nil {
		q = q.Where("?.user_id IN (SELECT user_id FROM user_group_mapping WHERE user_group_id = ?)", bun.Safe(k.table), *f.UserGroupID)
	}
	return q
}

func (k exportKind) keyCol() string { return k.table + ".id" }
