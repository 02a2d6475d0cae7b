package notify_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passbatch/passbatch/notify"
)

func TestWebhook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var keys []string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		st := status
		mu.Unlock()
		if !strings.Contains(string(b), `"dedup_key":"k1"`) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if st == 0 {
			time.Sleep(300 * time.Millisecond)
			return
		}
		w.WriteHeader(st)
	}))
	defer srv.Close()
	m := notify.Message{UUID: uuid.New(), UserID: 1, Event: "BEFORE_CLASS", DedupKey: "k1", Text: "수업 10분 전"}
	w := notify.NewWebhook(srv.URL, 100*time.Millisecond)
	set := func(s int) { mu.Lock(); status = s; mu.Unlock() }

	if err := w.Send(context.Background(), m); err != nil {
		t.Fatalf("2xx: %v", err)
	}
	set(http.StatusUnprocessableEntity)
	if err := w.Send(context.Background(), m); !notify.IsPermanent(err) {
		t.Fatalf("4xx: %v, want permanent", err)
	}
	transient := func(err error) bool {
		var te *notify.TransientError
		return errors.As(err, &te) && te.Retryable()
	}
	set(http.StatusServiceUnavailable)
	if err := w.Send(context.Background(), m); !transient(err) {
		t.Fatalf("5xx: %v, want a retryable *TransientError", err)
	}
	set(0) // no answer within the timeout
	if err := w.Send(context.Background(), m); !transient(err) {
		t.Fatalf("timeout: %v, want a retryable *TransientError", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		if k != m.UUID.String() {
			t.Fatalf("Idempotency-Key %q, want %s", k, m.UUID)
		}
	}
	if len(keys) != 4 {
		t.Fatalf("%d requests, want 4", len(keys))
	}
}

// TestWebhookErrorsHideTheURL: the webhook URL may carry a token; an error
// from a failed delivery ends up in step exit messages on /admin/jobs, so
// it names the host's failure, never the URL.
func TestWebhookErrorsHideTheURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	m := notify.Message{UUID: uuid.New(), UserID: 1, Event: "BEFORE_CLASS", DedupKey: "k1"}
	for _, base := range []string{srv.URL, closedURL} {
		w := notify.NewWebhook(base+"/hook?token=s3cr3t-hook-token", 100*time.Millisecond)
		err := w.Send(context.Background(), m)
		var te *notify.TransientError
		if !errors.As(err, &te) {
			t.Fatalf("%s: %v, want a *TransientError", base, err)
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "/hook") {
			t.Fatalf("error names the webhook URL: %q", err)
		}
	}
	if err := notify.NewWebhook("http://exa mple/?token=s3cr3t", time.Second).Send(context.Background(), m); err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("bad URL: %v, want an error without the URL", err)
	}
}
