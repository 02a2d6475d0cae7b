package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/passbatch/passbatch/tasks"
)

func TestExportFlow(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	body := `{"kind":"bookings","format":"csv","filter":{"status":"completed"}}`
	st, first, h := b.do(t, nil, call{"export", "admin", "POST", "/api/admin/exports", body, nil, 0, "", ""})
	if st != 202 || h.Get("Export-Created") != "true" || first["bom"] != true {
		t.Fatalf("request: %d %v", st, first)
	}
	id := int64(first["id"].(float64))
	// bom=false is another file, so another export.
	if st, plain, h := b.do(t, nil, call{"no bom", "admin", "POST", "/api/admin/exports", strings.TrimSuffix(body, "}") + `,"bom":false}`, nil, 0, "", ""}); st != 202 ||
		h.Get("Export-Created") != "true" || plain["bom"] != false || int64(plain["id"].(float64)) == id {
		t.Fatalf("bom=false: %d %v", st, plain)
	}
	// The same request while it runs is the same export.
	if st, again, h := b.do(t, nil, call{"again", "admin", "POST", "/api/admin/exports", body, nil, 0, "", ""}); st != 202 || int64(again["id"].(float64)) != id {
		t.Fatalf("identical request: %d %v (created %s)", st, again, h.Get("Export-Created"))
	}
	var status string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, e, _ := b.do(t, nil, call{"get", "admin", "GET", fmt.Sprintf("/api/admin/exports/%d", id), "", nil, 0, "", ""})
		status, _ = e["status"].(string)
		if status == "COMPLETED" || status == "FAILED" {
			if e["progress"].(float64) != 1 {
				t.Fatalf("completed export progress %v", e["progress"])
			}
			break
		}
	}
	if status != "COMPLETED" {
		t.Fatalf("export ended %s", status)
	}
	get := func(rng string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/admin/exports/%d/download", b.url, id), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, full := get("")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	recs, err := csv.NewReader(strings.NewReader(full)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var want int
	if err := b.db.NewRaw("SELECT count(*) FROM booking WHERE status = 'COMPLETED'").Scan(context.Background(), &want); err != nil {
		t.Fatal(err)
	}
	if len(recs)-1 != want {
		t.Fatalf("downloaded %d rows, want %d", len(recs)-1, want)
	}
	resp, part := get("bytes=10-19")
	if resp.StatusCode != http.StatusPartialContent || part != full[10:20] {
		t.Fatalf("range: %d %q, want 206 %q", resp.StatusCode, part, full[10:20])
	}
	for _, c := range []call{
		{"bad kind", "admin", "POST", "/api/admin/exports", `{"kind":"users","format":"csv"}`, nil, 422, "invalid", "kind"},
		{"bad format", "admin", "POST", "/api/admin/exports", `{"kind":"passes","format":"pdf"}`, nil, 422, "invalid", "format"},
		{"bad status", "admin", "POST", "/api/admin/exports", `{"kind":"passes","format":"csv","filter":{"status":"USED"}}`, nil, 422, "invalid", "filter.status"},
		{"unknown export", "admin", "GET", "/api/admin/exports/999999", ``, nil, 404, "not_found", ""},
		{"exports as user", "", "GET", "/api/admin/exports", ``, nil, 401, "unauthenticated", ""},
	} {
		st, body, _ := b.do(t, nil, c)
		e, _ := body["error"].(map[string]any)
		if st != c.status || e == nil || e["code"] != c.code || (c.field != "" && e["field"] != c.field) {
			t.Errorf("%s: %d %v", c.name, st, body)
		}
	}
	var n int
	_ = b.db.NewRaw("SELECT count(*) FROM export").Scan(context.Background(), &n)
	if n != 2 {
		t.Fatalf("%d exports, want 2 (with and without a BOM)", n)
	}
}

// waitExport polls export id until it is COMPLETED or FAILED (or a minute
// passes) and returns its status.
func (b *bundle) waitExport(t *testing.T, id int64) string {
	t.Helper()
	var status string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := b.db.NewRaw("SELECT status FROM export WHERE id = ?", id).Scan(context.Background(), &status); err != nil {
			t.Fatal(err)
		}
		if status == "COMPLETED" || status == "FAILED" {
			break
		}
	}
	return status
}

// TestExportWhoseLaunchWasLostStarts: an export recorded PENDING whose job
// was never launched (its process died in between) is launched by the
// next identical request instead of being returned PENDING forever.
func TestExportWhoseLaunchWasLostStarts(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	req := tasks.ExportRequest{Kind: "passes", Format: "csv"}
	filter, hash, err := req.Validate()
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := b.db.NewRaw(`INSERT INTO export (kind, format, filter, filter_hash, status, created_at) VALUES ('passes', 'csv', ?, ?, 'PENDING', now() - interval '5 minutes') RETURNING id`,
		string(filter), hash).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	st, got, _ := b.do(t, nil, call{"again", "admin", "POST", "/api/admin/exports", `{"kind":"passes","format":"csv"}`, nil, 0, "", ""})
	if st != 202 || int64(got["id"].(float64)) != id {
		t.Fatalf("identical request: %d %v, want the pending export %d", st, got, id)
	}
	if status := b.waitExport(t, id); status != "COMPLETED" {
		t.Fatalf("the export whose launch was lost ended %s, want COMPLETED", status)
	}
}

// TestAbandonStoppingExport: an export whose execution is abandoned while
// stuck STOPPING (its worker died) becomes FAILED, not RUNNING forever.
func TestAbandonStoppingExport(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	st, got, _ := b.do(t, nil, call{"export", "admin", "POST", "/api/admin/exports", `{"kind":"passes","format":"xlsx"}`, nil, 0, "", ""})
	if st != 202 {
		t.Fatalf("request: %d %v", st, got)
	}
	id := int64(got["id"].(float64))
	var je int64
	if err := b.db.NewRaw(`UPDATE batch_job_execution SET status = 'STOPPING' WHERE job_execution_id = (SELECT max(job_execution_id) FROM batch_job_execution) RETURNING job_execution_id`).Scan(context.Background(), &je); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(context.Background(), "UPDATE export SET status = 'RUNNING', job_execution_id = ? WHERE id = ?", je, id); err != nil {
		t.Fatal(err)
	}
	if st, got, _ := b.do(t, nil, call{"abandon", "admin", "POST", fmt.Sprintf("/api/admin/executions/%d/abandon", je), "", nil, 0, "", ""}); st/100 != 2 {
		t.Fatalf("abandon: %d %v", st, got)
	}
	var status, reason string
	if err := b.db.NewRaw("SELECT status, coalesce(error, '') FROM export WHERE id = ?", id).Scan(context.Background(), &status, &reason); err != nil {
		t.Fatal(err)
	}
	if status != "FAILED" || !strings.Contains(reason, "ABANDONED") {
		t.Fatalf("export of an execution abandoned while stopping: %s %q, want FAILED saying why", status, reason)
	}
}
