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
	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/seed"
	"github.com/passbatch/passbatch/tasks"
)

// TestProductBrowser drives the product pages in headless Chromium: an
// admin creates a package (a wrong one first: the field errors show next
// to their fields, in Korean, with what was typed kept) and a group, finds
// and adds two members, schedules a grant of the package to the group a
// minute ahead, and once it has fired sees the pass on each member's page;
// the demo member then sees the pass, an upcoming class and a notice.
// Every new page is saved at 1280 and at 390 px wide in test-artifacts/.
func TestProductBrowser(t *testing.T) {
	t.Parallel()
	ctx, artifacts := newChrome(t, 3*time.Minute)
	b := setup(t, true)
	b.exec(t, `INSERT INTO users (id, name, email, phone) VALUES (801, '테스트회원 하나', 'one@example.com', '010-5555-0001')`)
	var demoID int64
	_ = b.db.NewRaw("SELECT id FROM users WHERE email = ?", seed.UserEmail).Scan(context.Background(), &demoID)
	// A class reminder for the demo member's class in four minutes.
	je, err := b.engine.Launch(context.Background(), tasks.JobNotifyBeforeClass, batch.Params{batch.ParamRunAt: {Value: time.Now().UTC().Format(time.RFC3339), Identifying: true}})
	if err != nil {
		t.Fatal(err)
	}
	b.waitExecution(t, je.JobExecutionID)

	shots := func(name string) chromedp.Action { return screenshot(artifacts, name, 1280, 390) }
	login := b.login
	var badText, badCount, groupURL, found string
	err = chromedp.Run(ctx,
		login(seed.AdminEmail, seed.AdminPassword),
		chromedp.Navigate(b.url+"/admin/packages"), chromedp.WaitVisible(`form[action="/admin/packages"]`),
		chromedp.SendKeys(`form[action="/admin/packages"] input[name=count]`, "-3"),
		submit(`form[action="/admin/packages"] button`, `.field-error`),
		chromedp.Text(`form[action="/admin/packages"]`, &badText),
		chromedp.Value(`form[action="/admin/packages"] input[name=count]`, &badCount),
		shots("admin-packages-errors"),
		chromedp.SetValue(`form[action="/admin/packages"] input[name=name]`, "PT 8회 (브라우저)"),
		chromedp.SetValue(`form[action="/admin/packages"] input[name=count]`, "8"),
		chromedp.SendKeys(`form[action="/admin/packages"] input[name=period_days]`, "30"),
		submit(`form[action="/admin/packages"] button`, `p.ok`), shots("admin-packages"),
		chromedp.Navigate(b.url+"/admin/groups"), chromedp.WaitVisible(`form[action="/admin/groups"]`),
		chromedp.SendKeys(`form[action="/admin/groups"] input[name=name]`, "저녁반"),
		submit(`form[action="/admin/groups"] button`, `#group-members`), chromedp.Location(&groupURL),
		chromedp.SendKeys(`input[name=q]`, "민지"), submit(`form.filters button`, `#add-members`),
		chromedp.Click(`#add-members input[value="`+fmt.Sprint(demoID)+`"]`),
		submit(`#add-members button`, `#group-members`),
		chromedp.SendKeys(`input[name=q]`, "테스트회원"), submit(`form.filters button`, `#add-members`),
		chromedp.Click(`#add-members input[value="801"]`),
		submit(`#add-members button`, `#group-members`),
		chromedp.Text(`#group-members`, &found), shots("admin-group"),
		chromedp.Navigate(b.url+"/admin/groups"), chromedp.WaitVisible(`table`), shots("admin-groups"),
		chromedp.Navigate(b.url+"/admin/members?q=010-5555"), chromedp.WaitVisible(`#members`), shots("admin-members"),
	)
	if err != nil {
		t.Fatalf("admin pages: %v", err)
	}
	if !strings.Contains(badText, "필수 항목입니다") || !strings.Contains(badText, "1~10000") || badCount != "-3" {
		t.Errorf("refused package form: %q, count kept %q; want Korean field errors and the typed -3", badText, badCount)
	}
	if !strings.Contains(found, "김민지") || !strings.Contains(found, "테스트회원 하나") {
		t.Fatalf("group members after adding two: %q", found)
	}
	var pkgID, groupID int64
	_ = b.db.NewRaw("SELECT id FROM package WHERE name = 'PT 8회 (브라우저)'").Scan(context.Background(), &pkgID)
	_ = b.db.NewRaw("SELECT id FROM user_group WHERE name = '저녁반'").Scan(context.Background(), &groupID)
	if !strings.HasSuffix(groupURL, fmt.Sprintf("/admin/groups/%d", groupID)) || pkgID == 0 {
		t.Fatalf("package %d, group %d at %s", pkgID, groupID, groupURL)
	}
	at := time.Now().Add(time.Minute).In(models.Seoul).Format("2006-01-02T15:04")
	err = chromedp.Run(ctx,
		chromedp.Navigate(b.url+"/admin/bulk-passes"), chromedp.WaitVisible(`#grant-form`),
		chromedp.SetValue(`select[name=package_id]`, fmt.Sprint(pkgID)),
		chromedp.SetValue(`select[name=user_group_id]`, fmt.Sprint(groupID)),
		chromedp.SetValue(`input[name=at]`, at),
		submit(`#grant-form button[type=submit]`, `p.ok`),
	)
	if err != nil {
		t.Fatalf("bulk grant form: %v", err)
	}
	// A minute passes: the scheduled grant task is run now instead of
	// waiting for it, then the pages show its passes.
	b.fireScheduledGrants(t)
	var bp string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && bp != models.BulkPassCompleted; time.Sleep(100 * time.Millisecond) {
		_ = b.db.NewRaw("SELECT status FROM bulk_pass WHERE package_id = ?", pkgID).Scan(context.Background(), &bp)
	}
	if bp != models.BulkPassCompleted {
		t.Fatalf("the grant is %s a minute later, want COMPLETED", bp)
	}
	var oneText, demoText string
	err = chromedp.Run(ctx,
		chromedp.Navigate(b.url+"/admin/members/801"), chromedp.WaitVisible(`#member-passes`), chromedp.Text(`main`, &oneText), shots("admin-member"),
		chromedp.Navigate(fmt.Sprintf("%s/admin/members/%d", b.url, demoID)), chromedp.WaitVisible(`#member-passes`), chromedp.Text(`#member-passes`, &demoText),
		submit(`.who button`, `input[name=email]`),
	)
	if err != nil {
		t.Fatalf("member pages: %v", err)
	}
	if !strings.Contains(oneText, "PT 8회 (브라우저)") || !strings.Contains(oneText, "남은 횟수 8회") || !strings.Contains(demoText, "PT 8회 (브라우저)") {
		t.Fatalf("members' pages after the grant:\n%s\n---\n%s", oneText, demoText)
	}
	var passes, classes, notices, english string
	err = chromedp.Run(ctx,
		login(seed.UserEmail, seed.UserPassword),
		chromedp.Navigate(b.url+"/me/passes"), chromedp.WaitVisible(`.pass`), chromedp.Text(`main`, &passes), shots("me-passes-detail"),
		chromedp.Navigate(b.url+"/me/classes"), chromedp.WaitVisible(`#upcoming`), chromedp.Text(`main`, &classes), shots("me-classes"),
		chromedp.Navigate(b.url+"/me/notices"), chromedp.WaitVisible(`main h1`), chromedp.Text(`main`, &notices), shots("me-notices"),
		submit(`.lang a[lang=en]`, `main h1`), chromedp.Text(`main`, &english),
		chromedp.Navigate(b.url+"/me/classes"), chromedp.WaitVisible(`#upcoming`), shots("me-classes-en"),
	)
	if err != nil {
		t.Fatalf("member's own pages: %v", err)
	}
	if !strings.Contains(passes, "PT 8회 (브라우저)") || !strings.Contains(passes, "남은 기간") {
		t.Errorf("my passes lacks the new pass or its days left:\n%s", passes)
	}
	if !strings.Contains(classes, "다가오는 수업") || !strings.Contains(classes, "예약됨") || !strings.Contains(classes, "−1") {
		t.Errorf("my classes lacks an upcoming class or a deducted use:\n%s", classes)
	}
	if !strings.Contains(notices, "수업 전 알림") || !strings.Contains(notices, "수업이 곧 시작합니다") {
		t.Errorf("my notices lacks the class reminder:\n%s", notices)
	}
	if !strings.Contains(english, "My notices") || !strings.Contains(english, "Class reminder") {
		t.Errorf("after switching to English:\n%s", english)
	}
}

// fireScheduledGrants runs the scheduled grant tasks now, as if their time
// had come.
func (b *bundle) fireScheduledGrants(t *testing.T) {
	t.Helper()
	opt, _ := asynq.ParseRedisURI(b.redis)
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	queues, err := insp.Queues()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range queues {
		tasks, err := insp.ListScheduledTasks(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if err := insp.RunTask(q, task.ID); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no scheduled grant task to fire")
	}
}
