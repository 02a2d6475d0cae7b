package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/passbatch/passbatch/internal/testenv"
	"github.com/passbatch/passbatch/seed"
)

// statements counts the statements Postgres ran in db's database so far
// (pg_stat_statements, which make services loads), this count's own
// statements left out.
func statements(t *testing.T, db *testenv.DB) int64 {
	t.Helper()
	var n int64
	if err := db.NewRaw(`SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat_statements%'`).Scan(context.Background(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMemberPassesInOneStatement: a member's passes, as JSON and as the
// page, cost one statement, which also checks the session (the members'
// busiest route under load); every expiry warning comes with its own pass.
func TestMemberPassesInOneStatement(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	ctx := context.Background()
	user := b.userClient(t, seed.UserEmail, seed.UserPassword)
	var passes []int64
	if err := b.db.NewRaw(`SELECT p.id FROM pass p JOIN users u ON u.id = p.user_id WHERE u.email = ? ORDER BY p.id`, seed.UserEmail).Scan(ctx, &passes); err != nil || len(passes) < 2 {
		t.Fatalf("the demo member's passes %v, %v; want two or more", passes, err)
	}
	// Two warnings about the first pass, one about the last.
	for i, p := range []int64{passes[0], passes[0], passes[len(passes)-1]} {
		if _, err := b.db.ExecContext(ctx, `INSERT INTO notification (user_id, event, dedup_key, text, sent, sent_at)
			SELECT id, 'BEFORE_EXPIRY', ?, ?, true, now() FROM users WHERE email = ?`, fmt.Sprintf("before-expiry:pass:%d:r%d", p, i), fmt.Sprintf("notice %d", i), seed.UserEmail); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		t.Fatalf("pg_stat_statements (make services loads it): %v", err)
	}
	get := func(path string) (int, string, int64) {
		before := statements(t, b.db)
		resp, err := user.Get(b.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body), statements(t, b.db) - before
	}
	st, body, n := get("/api/me/passes")
	if st != http.StatusOK || n != 1 {
		t.Fatalf("GET /api/me/passes: %d in %d statements, want 200 in 1", st, n)
	}
	var got struct {
		Items []struct {
			ID      int64 `json:"id"`
			Notices []struct {
				PassID int64  `json:"pass_id"`
				Text   string `json:"text"`
			} `json:"notices"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Items) != len(passes) {
		t.Fatalf("%d passes (%v), want %d: %s", len(got.Items), err, len(passes), body)
	}
	var texts []string
	for _, p := range got.Items {
		for _, nt := range p.Notices {
			if nt.PassID != p.ID {
				t.Fatalf("pass %d shows a notice about pass %d", p.ID, nt.PassID)
			}
			texts = append(texts, fmt.Sprintf("%d:%s", p.ID, nt.Text))
		}
	}
	want := fmt.Sprintf("%d:notice 1,%d:notice 0,%d:notice 2", passes[0], passes[0], passes[len(passes)-1])
	if strings.Join(texts, ",") != want {
		t.Fatalf("notices %v, want %s (newest first, each with its pass)", texts, want)
	}
	if st, body, n := get("/me/passes"); st != http.StatusOK || n != 1 || !strings.Contains(body, "notice 2") {
		t.Fatalf("GET /me/passes: %d in %d statements, want 200 in 1 showing the notices", st, n)
	}
	// A page of one pass.
	st, body, _ = get("/api/me/passes?limit=1")
	got.Items = nil
	if err := json.Unmarshal([]byte(body), &got); err != nil || st != http.StatusOK || len(got.Items) != 1 || got.Items[0].ID != passes[0] || len(got.Items[0].Notices) != 2 {
		t.Fatalf("a page of one: %d %s", st, body)
	}
}
