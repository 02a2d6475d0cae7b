package storage_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/passbatch/passbatch/storage"
)

func TestLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Put(ctx, "reports/daily/2026-11-24.csv", strings.NewReader("a,b\n1,2\n"))
	if err != nil || n != 8 {
		t.Fatalf("put: %d %v", n, err)
	}
	f, err := s.Open(ctx, "reports/daily/2026-11-24.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "a,b\n1,2\n" {
		t.Fatalf("read %q", b)
	}
	list, err := s.List(ctx, "reports/")
	if err != nil || len(list) != 1 || list[0].Key != "reports/daily/2026-11-24.csv" || list[0].Size != 8 {
		t.Fatalf("list %+v %v", list, err)
	}
	for _, bad := range []string{"", "../etc/passwd", "/abs", "a/../../b"} {
		if _, err := s.Put(ctx, bad, strings.NewReader("x")); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("put %q: %v, want ErrBadKey", bad, err)
		}
	}
	if err := s.Delete(ctx, "reports/daily/2026-11-24.csv"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "reports/daily/2026-11-24.csv"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
}
