package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// get fetches path with client and returns the status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestExecutionPage: an execution has its own page (parameters, status,
// timeline, steps with pace, partitions, skipped items), a live part the
// page's script polls, and the API detail carries the same pace and
// partitions; the jobs page filters its history and links there.
func TestExecutionPage(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	admin := b.userClient(t, seed.AdminEmail, seed.AdminPassword)
	p := batch.Params{batch.ParamRunAt: {Value: time.Now().UTC().Format(time.RFC3339), Identifying: true}}
	je, err := b.engine.Launch(context.Background(), tasks.JobUsePasses, p)
	if err != nil {
		t.Fatal(err)
	}
	if st := b.waitExecution(t, je.JobExecutionID); st != batch.StatusCompleted {
		t.Fatalf("use-passes ended %s", st)
	}
	id := je.JobExecutionID
	status, page := get(t, admin, b.url+"/admin/executions/"+itoa(id))
	for _, want := range []string{"<h1>#" + itoa(id) + " use-passes</h1>", "run.at", `<svg class="timeline"`, `class="partitions"`, "deduct:", "COMPLETED", "/static/execution.js", `data-running="false"`} {
		if status != 200 || !strings.Contains(page, want) {
			t.Fatalf("execution page: %d, lacks %q", status, want)
		}
	}
	if n := strings.Count(page, `<progress class="progress"`); n < 5 {
		t.Errorf("execution page shows %d progress bars, want the execution's and one per partition (4)", n)
	}
	status, live := get(t, admin, b.url+"/admin/executions/"+itoa(id)+"/live")
	if status != 200 || strings.Contains(live, "<html") || !strings.Contains(live, `data-running="false"`) || !strings.Contains(live, `class="partitions"`) {
		t.Fatalf("live part: %d %q…", status, live[:min(len(live), 200)])
	}
	// The API detail: pace and partitions.
	_, body := get(t, admin, b.url+"/api/admin/executions/"+itoa(id))
	var d struct {
		Steps []struct {
			Name           string   `json:"step_name"`
			ItemsPerSecond *float64 `json:"items_per_second"`
			Partitions     []struct {
				Key      string  `json:"partition_key"`
				Progress float64 `json:"progress"`
				Worker   string  `json:"worker_id"`
			} `json:"partitions"`
		} `json:"steps"`
	}
	// use-passes: complete (a tasklet), then deduct (partitioned).
	if err := json.Unmarshal([]byte(body), &d); err != nil || len(d.Steps) != 2 || d.Steps[1].Name != "deduct" {
		t.Fatalf("API detail: %v %s", err, body[:min(len(body), 300)])
	}
	d.Steps = d.Steps[1:]
	if len(d.Steps[0].Partitions) != 4 || d.Steps[0].ItemsPerSecond == nil {
		t.Fatalf("API detail of deduct: %s", body[:min(len(body), 600)])
	}
	for _, p := range d.Steps[0].Partitions {
		if p.Key == "" || p.Progress != 1 || p.Worker == "" {
			t.Errorf("partition %+v: want a key, progress 1 and the worker that ran it", p)
		}
	}
	// Skipped items, paged through the API (the demo gym skips at least one).
	_, body = get(t, admin, b.url+"/api/admin/executions/"+itoa(id)+"/skipped?limit=1")
	var sk struct {
		Items []batch.SkipRecord `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &sk); err != nil || len(sk.Items) != 1 || sk.Items[0].Error == "" {
		t.Fatalf("skipped items: %v %s", err, body)
	}
	if !strings.Contains(page, sk.Items[0].Error) {
		t.Errorf("the page does not show the skip reason %q", sk.Items[0].Error)
	}
	// The jobs page: history filtered by job and status, linked here.
	_, jobs := get(t, admin, b.url+"/admin/jobs?job=use-passes&status=COMPLETED")
	if !strings.Contains(jobs, `href="/admin/executions/`+itoa(id)+`"`) || !strings.Contains(jobs, `<option value="use-passes" selected>`) {
		t.Fatalf("jobs page filtered by job does not link execution %d", id)
	}
	_, none := get(t, admin, b.url+"/admin/jobs?job=use-passes&status=FAILED")
	if strings.Contains(none[strings.Index(none, `id="history"`):], `href="/admin/executions/`+itoa(id)+`"`) {
		t.Fatal("jobs page filtered by FAILED lists a COMPLETED execution")
	}
	if code, _ := get(t, admin, b.url+"/api/admin/executions?from=yesterday"); code != 422 {
		t.Fatalf("a bad from: %d, want 422", code)
	}
	tomorrow := time.Now().AddDate(0, 0, 2).Format("2006-01-02")
	_, body = get(t, admin, b.url+"/api/admin/executions?from="+tomorrow)
	if !strings.Contains(body, `"items":[]`) {
		t.Fatalf("executions from the day after tomorrow: %s", body)
	}
	if code, _ := get(t, admin, b.url+"/admin/executions/999999"); code != 404 {
		t.Fatalf("an unknown execution's page: %d", code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLaunchNextAndRecoverAPI: {"next":true} launches run.id 1 then 2 (new
// instances of a job whose business time is not the point); an unknown
// parameter is refused with the known ones; recover answers 409 for an
// execution that is not running; the jobs page shows NOOP next to
// COMPLETED for a notify run that had nothing to send.
func TestLaunchNextAndRecoverAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	admin := b.userClient(t, seed.AdminEmail, seed.AdminPassword)
	var ids []int64
	for i := 0; i < 2; i++ {
		st, body, _ := b.do(t, admin, call{"next", "admin", "POST", "/api/admin/jobs/" + tasks.JobPurgeIdempotencyKeys + "/executions", `{"next":true}`, nil, 0, "", ""})
		id, _ := body["job_execution_id"].(float64)
		if st != 202 || id == 0 {
			t.Fatalf("launch next: %d %v", st, body)
		}
		ids = append(ids, int64(id))
	}
	for i, id := range ids {
		b.waitExecution(t, id)
		d, err := b.engine.Execution(context.Background(), id)
		if err != nil || d.Params[batch.ParamRunID].Value != strconv.Itoa(i+1) {
			t.Fatalf("execution %d: run.id %v, want %d (%v)", id, d.Params[batch.ParamRunID], i+1, err)
		}
	}
	st, body, _ := b.do(t, admin, call{"bogus", "admin", "POST", "/api/admin/jobs/" + tasks.JobExpirePasses + "/executions", `{"params":{"bogus":"1"}}`, nil, 0, "", ""})
	if e, _ := body["error"].(map[string]any); st != 422 || !strings.Contains(fmt.Sprint(e["message"]), "known: run.at") {
		t.Fatalf("unknown parameter: %d %v", st, body)
	}
	st, body, _ = b.do(t, admin, call{"recover", "admin", "POST", "/api/admin/executions/" + itoa(ids[0]) + "/recover", ``, nil, 0, "", ""})
	if st != 409 {
		t.Fatalf("recover of a finished execution: %d %v, want 409", st, body)
	}
	je, err := b.engine.Launch(context.Background(), tasks.JobNotifyBeforeClass, batch.Params{batch.ParamRunAt: {Value: "2030-01-01T00:00:00Z", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitExecution(t, je.JobExecutionID)
	_, page := get(t, admin, b.url+"/admin/jobs?job="+tasks.JobNotifyBeforeClass)
	if !strings.Contains(page, `<span class="badge completed">COMPLETED</span> <span class="muted small">NOOP</span>`) {
		t.Fatalf("jobs page does not show the NOOP exit status")
	}
}
