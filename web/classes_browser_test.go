package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/passbatch/passbatch/models"
	"github.com/passbatch/passbatch/seed"
)

// TestClassesBrowser: an admin makes a class on the timetable page, the
// demo member books it on /me/classes with their pass, and once the class
// has run the admin marks the member attended on the class's page. Every
// page is saved at 1280 and 390 px wide in test-artifacts/.
func TestClassesBrowser(t *testing.T) {
	t.Parallel()
	ctx, artifacts := newChrome(t, 2*time.Minute)
	b := setup(t, false)
	shots := func(name string) chromedp.Action { return screenshot(artifacts, name, 1280, 390) }
	day := time.Now().In(models.Seoul).AddDate(0, 0, 1).Format("2006-01-02")
	var booked string
	err := chromedp.Run(ctx,
		b.login(seed.AdminEmail, seed.AdminPassword),
		chromedp.Navigate(b.url+"/admin/classes"), chromedp.WaitVisible(`#class-form`),
		chromedp.SendKeys(`#class-form input[name=title]`, "저녁 필라테스"),
		chromedp.SendKeys(`#class-form input[name=trainer]`, "박코치"),
		chromedp.SendKeys(`#class-form input[name=place]`, "2층 A룸"),
		chromedp.SetValue(`#class-form input[name=date]`, day),
		chromedp.SetValue(`#class-form input[name=start]`, "19:00"),
		chromedp.SetValue(`#class-form input[name=end]`, "19:50"),
		chromedp.SetValue(`#class-form input[name=capacity]`, "6"),
		submit(`#class-form button`, `.class-slot`), shots("admin-timetable"),
		// The class's page: one more seat.
		submit(`//a[contains(@class,"class-slot")][.//strong[text()="저녁 필라테스"]]`, `#class-edit`),
		chromedp.SetValue(`#class-edit input[name=capacity]`, "7"),
		submit(`#class-edit button`, `p.ok`), shots("admin-class"),
		b.login(seed.UserEmail, seed.UserPassword),
		chromedp.Navigate(b.url+"/me/classes"), chromedp.WaitVisible(`#timetable .book-form`), shots("me-classes-timetable"),
		submit(`//table[@id="timetable"]//tr[.//strong[text()="저녁 필라테스"]]//form//button`, `p.ok`), chromedp.Text(`main`, &booked), shots("me-classes-booked"),
	)
	if err != nil {
		t.Fatalf("timetable and booking: %v", err)
	}
	if !strings.Contains(booked, "저녁 필라테스") || !strings.Contains(booked, "예약했습니다") {
		t.Fatalf("the member's page after booking: %q", booked)
	}
	var class, user, capacity int64
	if err := b.db.NewRaw(`SELECT b.class_id, b.user_id FROM booking b JOIN users u ON u.id = b.user_id JOIN class c ON c.id = b.class_id
		WHERE u.email = ? AND c.title = '저녁 필라테스' AND b.status = 'READY'`, seed.UserEmail).Scan(context.Background(), &class, &user); err != nil {
		t.Fatalf("the booking is not in the database: %v", err)
	}
	if _ = b.db.NewRaw(`SELECT capacity FROM class WHERE id = ?`, class).Scan(context.Background(), &capacity); capacity != 7 {
		t.Fatalf("capacity %d after the edit, want 7", capacity)
	}
	// The class has run: its times move to the past.
	b.exec(t, `UPDATE class SET started_at = now() - interval '2 hours', ended_at = now() - interval '70 minutes' WHERE id = ?`, class)
	b.exec(t, `UPDATE booking SET started_at = now() - interval '2 hours', ended_at = now() - interval '70 minutes' WHERE class_id = ?`, class)
	err = chromedp.Run(ctx,
		b.login(seed.AdminEmail, seed.AdminPassword),
		chromedp.Navigate(fmt.Sprintf("%s/admin/classes/%d", b.url, class)), chromedp.WaitVisible(`#attendance`),
		chromedp.Click(fmt.Sprintf(`#attendance input[value="%d"]`, user)),
		submit(`#attendance button`, `p.ok`), shots("admin-class-attendance"),
	)
	if err != nil {
		t.Fatalf("attendance: %v", err)
	}
	var attended bool
	_ = b.db.NewRaw(`SELECT attended FROM booking WHERE class_id = ? AND user_id = ?`, class, user).Scan(context.Background(), &attended)
	if !attended {
		t.Fatal("the member was marked attended on the page but not in the database")
	}
}
