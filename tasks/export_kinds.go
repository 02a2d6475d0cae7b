package tasks

// The catalog of export kinds: their columns, the query that yields their
// rows as text, and the filter applied to them.

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/models"
)

// exportKind describes one kind of export: its columns and its rows.
type exportKind struct {
	table    string // keyset table alias
	columns  []string
	types    []string // text, int, time, bool: how XLSX writes a cell
	cells    string   // SQL list of the row's cells as text, in column order
	from     string   // FROM … (with joins)
	timeCol  string   // what from/to filter
	statuses []string
}

// utcText is SQL for a timestamp column as RFC 3339 UTC text, ” for NULL.
func utcText(col string) string {
	return "coalesce(to_char(" + col + ` AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '')`
}

var exportKinds = map[string]exportKind{
	"bookings": {
		table:   "b",
		columns: []string{"id", "user_id", "user_name", "pass_id", "status", "attended", "used_pass", "started_at", "ended_at", "cancelled_at"},
		types:   []string{"int", "int", "text", "int", "text", "bool", "bool", "time", "time", "time"},
		cells: `b.id::text, b.user_id::text, u.name, b.pass_id::text, b.status, b.attended::text, b.used_pass::text,
			` + utcText("b.started_at") + `, ` + utcText("b.ended_at") + `,
			` + utcText("b.cancelled_at"),
		from:     "booking AS b JOIN users AS u ON u.id = b.user_id",
		timeCol:  "b.started_at",
		statuses: []string{models.BookingReady, models.BookingCompleted, models.BookingCancelled},
	},
	"passes": {
		table:   "p",
		columns: []string{"id", "user_id", "user_name", "package", "status", "remaining_count", "started_at", "ended_at", "expired_at"},
		types:   []string{"int", "int", "text", "text", "text", "int", "time", "time", "time"},
		cells: `p.id::text, p.user_id::text, u.name, k.name, p.status, coalesce(p.remaining_count::text, ''),
			` + utcText("p.started_at") + `, ` + utcText("p.ended_at") + `,
			` + utcText("p.expired_at"),
		from:     "pass AS p JOIN users AS u ON u.id = p.user_id JOIN package AS k ON k.id = p.package_id",
		timeCol:  "p.started_at",
		statuses: []string{models.PassReady, models.PassProgressed, models.PassExpired},
	},
	"statistics": {
		table:   "s",
		columns: []string{"statistics_at", "all_count", "attended_count", "cancelled_count"},
		types:   []string{"time", "int", "int", "int"},
		cells: `` + utcText("s.statistics_at") + `, s.all_count::text,
			s.attended_count::text, s.cancelled_count::text`,
		from:    "statistics AS s",
		timeCol: "s.statistics_at",
	},
}

// exportRow is one row of an export: its key and its cells as text.
type exportRow struct {
	ID    int64
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
