package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// newChrome starts headless Chromium (Debian's chromium, installed by
// `make test`) speaking Korean at 1280×800 for the test, with timeout for
// everything it does, and makes test-artifacts/. It skips the test when
// chromium is not installed.
func newChrome(t *testing.T, timeout time.Duration) (ctx context.Context, artifacts string) {
	t.Helper()
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make test installs it)")
	}
	artifacts = filepath.Join("..", "test-artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("lang", "ko-KR"), chromedp.Flag("accept-lang", "ko-KR,ko"), chromedp.WindowSize(1280, 800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx, artifacts
}

// screenshot saves the whole page as artifacts/name.png, at each of the
// given widths (name-390.png for 390), or at the window's when none.
func screenshot(artifacts, name string, widths ...int64) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		if len(widths) == 0 {
			return saveShot(ctx, filepath.Join(artifacts, name+".png"))
		}
		for _, w := range widths {
			file := name + ".png"
			if w != 1280 {
				file = fmt.Sprintf("%s-%d.png", name, w)
			}
			if err := chromedp.EmulateViewport(w, 800).Do(ctx); err != nil {
				return err
			}
			if err := saveShot(ctx, filepath.Join(artifacts, file)); err != nil {
				return err
			}
		}
		return chromedp.EmulateViewport(1280, 800).Do(ctx)
	})
}

func saveShot(ctx context.Context, path string) error {
	var buf []byte
	if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil { // 100: PNG
		return err
	}
	return os.WriteFile(path, buf, 0o644)
}

// submit clicks a form's button and waits for the page it leads to: a
// new document (the old one is marked) that shows ready. Waiting only for
// ready would pass on the old page when both pages have it, and the next
// navigation would then race the form's.
func submit(button, ready string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Evaluate(`window.stalePage = true`, nil),
		chromedp.Click(button),
		chromedp.ActionFunc(func(ctx context.Context) error {
			js := fmt.Sprintf(`!window.stalePage && document.readyState === 'complete' && document.querySelector(%q) !== null`, ready)
			for {
				// Evaluating fails while the page navigates; ask again.
				var ok bool
				if err := chromedp.Evaluate(js, &ok).Do(ctx); err == nil && ok {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("no new page with %s after clicking %s: %w", ready, button, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
			}
		}),
	}
}

// login logs in through the login page.
func (b *bundle) login(email, password string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(b.url + "/login"), chromedp.WaitVisible(`input[name=email]`),
		chromedp.SendKeys(`input[name=email]`, email), chromedp.SendKeys(`input[name=password]`, password),
		submit(`button[type=submit]`, `main`),
	}
}
