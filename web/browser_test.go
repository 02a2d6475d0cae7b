package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/passbatch/passbatch/batch"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// TestBrowser drives the pages in headless Chromium (Debian's chromium,
// installed by `make test`) as the demo user and as the admin, and saves a
// 1280×800 screenshot of each page in test-artifacts/.
func TestBrowser(t *testing.T) {
	t.Parallel()
	ctx, artifacts := newChrome(t, 2*time.Minute)
	b := setup(t, true)
	// Statistics for the chart: the last ten days, as the hourly job makes them.
	to := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	je, err := b.engine.Launch(context.Background(), tasks.JobMakeStatistics, batch.Params{
		"from": {Value: to.Add(-11 * 24 * time.Hour).Format(time.RFC3339), Identifying: true},
		"to":   {Value: to.Format(time.RFC3339), Identifying: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var st string
		_ = b.db.NewRaw("SELECT status FROM batch_job_execution WHERE job_execution_id = ?", je.JobExecutionID).Scan(context.Background(), &st)
		if st == batch.StatusCompleted {
			break
		}
	}
	// A failed export to restart from the exports page: its job failed
	// (launched while the export was EXPIRED), then it is marked FAILED.
	b.exec(t, `INSERT INTO export (id, kind, format, filter_hash, status) VALUES (77, 'passes', 'csv', 'restart-me', 'EXPIRED')`)
	fje, err := b.engine.Launch(context.Background(), tasks.JobExport, batch.Params{tasks.ParamExportID: {Value: "77", Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	if st := b.waitExecution(t, fje.JobExecutionID); st != batch.StatusFailed {
		t.Fatalf("the export job of an expired export ended %s, want FAILED", st)
	}
	b.exec(t, `UPDATE export SET status = 'FAILED', error = 'disk full', job_execution_id = ? WHERE id = 77`, fje.JobExecutionID)
	shot := func(name string) chromedp.Action { return screenshot(artifacts, name) }
	// exportsSettled waits for the requested export to finish, so the
	// exports page no longer refreshes itself under the clicks that follow.
	exportsSettled := chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var n int
			if err := b.db.NewRaw("SELECT count(*) FROM export WHERE status IN ('PENDING', 'RUNNING')").Scan(ctx, &n); err != nil || n == 0 {
				return err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("exports still running: %w", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	login := b.login
	var passesText, bulkText, statsText, jobsText, monText, exportsText, afterRestart string
	var bars int
	err = chromedp.Run(ctx,
		chromedp.Navigate(b.url+"/login"), chromedp.WaitVisible(`form`), shot("login"),
		login(seed.UserEmail, seed.UserPassword),
		chromedp.WaitVisible(`.pass`), chromedp.Text(`main`, &passesText), shot("me-passes"),
		submit(`.who button`, `input[name=email]`),
		login(seed.AdminEmail, seed.AdminPassword),
		chromedp.WaitVisible(`#chart`),
		chromedp.Navigate(b.url+"/admin/bulk-passes"), chromedp.WaitVisible(`#grant-form`),
		chromedp.SetValue(`select[name=user_group_id]`, "1"),
		submit(`#grant-form button[type=submit]`, `p.ok`), chromedp.Text(`main`, &bulkText), shot("admin-bulk-passes"),
		chromedp.Navigate(b.url+"/admin/statistics?granularity=day"), chromedp.WaitVisible(`#chart`),
		chromedp.Evaluate(`document.querySelectorAll('#chart rect').length`, &bars),
		chromedp.Text(`main`, &statsText), shot("admin-statistics"),
		chromedp.Navigate(b.url+"/admin/jobs"), chromedp.WaitVisible(`table`), chromedp.Text(`main`, &jobsText), shot("admin-jobs"),
		chromedp.Navigate(b.url+"/admin/exports"), chromedp.WaitVisible(`#export-form`),
		submit(`#export-form button[type=submit]`, `p.ok`), exportsSettled,
		chromedp.Navigate(b.url+"/admin/exports"), chromedp.WaitVisible(`table`), chromedp.Text(`main`, &exportsText), shot("admin-exports"),
		submit(`form[action$="/restart"] button`, `#export-form`), chromedp.Location(&afterRestart),
		chromedp.Navigate(b.url+"/admin/monitoring"), chromedp.Sleep(2*time.Second),
		chromedp.Text(`body`, &monText), shot("admin-monitoring"),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	// Follow a running execution on its page: partitions held back (their
	// queue paused), then let go; the page's script must bring the page to
	// COMPLETED without a reload.
	opt, _ := asynq.ParseRedisURI(b.redis)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	if err := insp.PauseQueue(batch.QueuePartition); err != nil {
		t.Fatal(err)
	}
	run, err := b.engine.Launch(context.Background(), tasks.JobUsePasses, batch.Params{
		batch.ParamRunAt: {Value: time.Now().UTC().Format(time.RFC3339), Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	var runningText, doneText string
	var sameDocument bool
	err = chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/admin/executions/%d", b.url, run.JobExecutionID)),
		chromedp.WaitVisible(`#live`), chromedp.WaitVisible(`#live .partitions`),
		chromedp.Text(`main`, &runningText), shot("admin-execution-running"),
		chromedp.Evaluate(`window.followed = true`, nil),
		chromedp.ActionFunc(func(context.Context) error { return insp.UnpauseQueue(batch.QueuePartition) }),
		chromedp.WaitVisible(`#live section.card h2 .badge.completed`),
		chromedp.Evaluate(`window.followed === true`, &sameDocument),
		chromedp.Text(`main`, &doneText), shot("admin-execution"),
	)
	if err != nil {
		t.Fatalf("following execution %d: %v", run.JobExecutionID, err)
	}
	if !strings.Contains(runningText, "STARTED") && !strings.Contains(runningText, "STARTING") {
		t.Errorf("the execution page of a held execution:\n%s", runningText)
	}
	if !sameDocument || !strings.Contains(doneText, "COMPLETED") || !strings.Contains(doneText, "deduct") {
		t.Errorf("followed to the end without a reload %v:\n%s", sameDocument, doneText)
	}
	for _, want := range []string{"내 이용권", "남은 횟수", "무제한", "진행 중", "만료", "시작 전"} {
		if !strings.Contains(passesText, want) {
			t.Errorf("my passes page lacks %q:\n%s", want, passesText)
		}
	}
	if !strings.Contains(bulkText, "지급 예약됨") {
		t.Errorf("bulk page shows no confirmation:\n%s", bulkText)
	}
	if bars < 2 {
		t.Errorf("statistics chart has %d bars", bars)
	}
	if !strings.Contains(jobsText, "expire-passes") || !strings.Contains(jobsText, "make-statistics") {
		t.Errorf("jobs page lacks the jobs:\n%s", jobsText)
	}
	if !strings.Contains(exportsText, "예약") || !strings.Contains(exportsText, "xlsx") {
		t.Errorf("exports page lacks the requested export:\n%s", exportsText)
	}
	if !strings.Contains(exportsText, "disk full") || !strings.HasSuffix(afterRestart, "/admin/exports") {
		t.Errorf("failed export: reason shown %v, back on %s after restart", strings.Contains(exportsText, "disk full"), afterRestart)
	}
	var restarted string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && restarted != "COMPLETED"; time.Sleep(100 * time.Millisecond) {
		_ = b.db.NewRaw("SELECT status FROM export WHERE id = 77").Scan(context.Background(), &restarted)
	}
	if restarted != "COMPLETED" {
		t.Errorf("the export restarted from its page is %s, want COMPLETED", restarted)
	}
	if !strings.Contains(strings.ToLower(monText), "queue") {
		t.Errorf("asynqmon did not render:\n%.300s", monText)
	}
	var n int
	if err := b.db.NewRaw("SELECT count(*) FROM bulk_pass WHERE status = 'READY'").Scan(context.Background(), &n); err != nil || n < 1 {
		t.Fatalf("the form created no READY bulk pass (%d, %v)", n, err)
	}
}
