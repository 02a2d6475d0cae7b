// Package notify sends notifications to users: to the log by default, or
// to a webhook (NOTIFY_WEBHOOK_URL).
//
// The guarantee is at-least-once towards the receiver: a notification is
// marked sent only after the receiver accepted it, in the same transaction
// that records it, so a crash between the two sends it again. Every request
// carries the notification's UUID as Idempotency-Key; a receiver that keeps
// the keys it has seen delivers each notice once.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Message is one notification to one user.
type Message struct {
	UUID     uuid.UUID `json:"uuid"`
	UserID   int64     `json:"user_id"`
	Event    string    `json:"event"`
	DedupKey string    `json:"dedup_key"`
	Text     string    `json:"text"`
}

// Notifier delivers messages. Send returns nil when the message was
// accepted, a *PermanentError when retrying cannot help and a
// *TransientError when a retry may. Both have Retryable() bool, which the
// batch engine's RetryPolicy reads.
type Notifier interface {
	Send(ctx context.Context, m Message) error
}

// PermanentError is a delivery the receiver refused for good (a 4xx).
type PermanentError struct {
	Status int
	Body   string
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("notification refused with HTTP %d: %s", e.Status, e.Body)
}

// Retryable reports false: the receiver refused the message for good.
func (e *PermanentError) Retryable() bool { return false }

// TransientError is a delivery that may succeed if tried again: a 5xx, a
// 408 or 429, a timeout or a dropped connection.
type TransientError struct {
	Status int // 0 when no answer came
	Err    error
}

func (e *TransientError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("notification not delivered (HTTP %d): %v", e.Status, e.Err)
	}
	return fmt.Sprintf("notification not delivered: %v", e.Err)
}

// Unwrap returns the cause.
func (e *TransientError) Unwrap() error { return e.Err }

// Retryable reports true: a retry may help.
func (e *TransientError) Retryable() bool { return true }

// IsPermanent reports whether err is a *PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Log writes notifications to a logger.
type Log struct{ Logger *slog.Logger }

// Send implements Notifier.
func (l Log) Send(ctx context.Context, m Message) error {
	l.Logger.InfoContext(ctx, "notification", "uuid", m.UUID, "user_id", m.UserID, "event", m.Event, "dedup_key", m.DedupKey, "text", m.Text)
	return nil
}

// Webhook POSTs notifications as JSON to URL.
type Webhook struct {
	URL    string
	Client *http.Client
}

// NewWebhook returns a webhook notifier with timeout per request (default 5s).
func NewWebhook(url string, timeout time.Duration) *Webhook {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Webhook{URL: url, Client: &http.Client{Timeout: timeout}}
}

// Send implements Notifier: 2xx is sent, 4xx a *PermanentError, anything
// else (5xx, timeout, connection error) a retryable error.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return &PermanentError{Body: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Body: "the webhook URL (NOTIFY_WEBHOOK_URL) is not a valid URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", m.UUID.String())
	resp, err := w.Client.Do(req)
	if err != nil {
		return &TransientError{Err: hideURL(err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	// The cut at 512 bytes may split a character (or the body is not
	// UTF-8 at all): the snippet goes to Postgres, which wants valid text.
	snippet := strings.ToValidUTF8(string(raw), "\uFFFD")
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return &PermanentError{Status: resp.StatusCode, Body: snippet}
	}
	return &TransientError{Status: resp.StatusCode, Err: errors.New(snippet)}
}

// hideURL drops the request URL from a client error: the URL may carry a
// token, and delivery errors reach step exit messages and logs.
func hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s webhook: %w", ue.Op, ue.Err)
	}
	return err
}

// FromConfig returns the webhook notifier for url, or the log notifier when
// url is empty.
func FromConfig(url string, log *slog.Logger) Notifier {
	if url == "" {
		return Log{Logger: log}
	}
	return NewWebhook(url, 5*time.Second)
}
