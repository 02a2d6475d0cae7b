package storage_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/passbatch/passbatch/storage"
)

func TestLocal(t *testing.T) {
	t.Parallel()
	s, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s)
}

// TestS3 runs the same checks against the S3 backend talking to an
// in-process S3 server (gofakes3) on loopback.
func TestS3(t *testing.T) {
	t.Parallel()
	backend := s3mem.New()
	faker := gofakes3.New(backend)
	srv := httptest.NewServer(faker.Server())
	defer srv.Close()
	if err := backend.CreateBucket("exports"); err != nil {
		t.Fatal(err)
	}
	s, err := storage.NewS3(context.Background(), "s3://exports/passbatch", storage.S3Options{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true, AccessKey: "k", Secret: "s", Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	conformance(t, s)
	if _, err := storage.NewS3(context.Background(), "s3://missing/x", storage.S3Options{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true, AccessKey: "k", Secret: "s", Region: "us-east-1",
	}); err == nil {
		t.Fatal("a missing bucket was accepted")
	}
}

func conformance(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	n, err := s.Put(ctx, "reports/daily/2026-11-24.csv", strings.NewReader("a,b\n1,2\n"))
	if err != nil || n != 8 {
		t.Fatalf("put: %d %v", n, err)
	}
	f, err := s.Open(ctx, "reports/daily/2026-11-24.csv")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "a,b\n1,2\n" {
		t.Fatalf("read %q", b)
	}
	if _, err := f.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(f)
	f.Close()
	if string(b) != "1,2\n" {
		t.Fatalf("read after seek %q", b)
	}
	list, err := s.List(ctx, "reports/")
	if err != nil || len(list) != 1 || list[0].Key != "reports/daily/2026-11-24.csv" || list[0].Size != 8 {
		t.Fatalf("list %+v %v", list, err)
	}
	// A prefix matches keys, not directories: exports/1/ is not exports/10/.
	for _, k := range []string{"exports/1/parts/a.csv", "exports/1/f.xlsx", "exports/10/f.csv"} {
		if _, err := s.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, want := range map[string]string{
		"exports/1/":  "exports/1/f.xlsx exports/1/parts/a.csv",
		"exports/1":   "exports/1/f.xlsx exports/1/parts/a.csv exports/10/f.csv",
		"exports/2/":  "",
		"nothing/at/": "",
	} {
		list, err := s.List(ctx, prefix)
		var keys []string
		for _, i := range list {
			keys = append(keys, i.Key)
		}
		if err != nil || strings.Join(keys, " ") != want {
			t.Errorf("list %q: %v %v, want %s", prefix, keys, err, want)
		}
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

// TestErrorsSayWhetherToRetry: what a retry cannot cure (a missing file, a
// bad key, a refused permission) is permanent; an S3 server that went away
// is temporary.
func TestErrorsSayWhetherToRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	retryable := func(err error) (bool, bool) {
		var se *storage.Error
		if !errors.As(err, &se) {
			return false, false
		}
		return se.Retryable(), true
	}
	dir := t.TempDir()
	local, err := storage.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	if err := backend.CreateBucket("bucket"); err != nil {
		t.Fatal(err)
	}
	s3, err := storage.NewS3(ctx, "s3://bucket/p", storage.S3Options{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Insecure: true, AccessKey: "k", Secret: "s", Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // the server goes away
	_, missing := local.Open(ctx, "nope.csv")
	_, badKey := local.Put(ctx, "../x", strings.NewReader("x"))
	_, down := s3.Put(ctx, "x.csv", strings.NewReader("x"))
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"missing file", missing, false},
		{"bad key", badKey, false},
		{"S3 server down", down, true},
	} {
		got, typed := retryable(tt.err)
		if !typed || got != tt.want {
			t.Errorf("%s: %v: typed %v, retryable %v, want typed and %v", tt.name, tt.err, typed, got, tt.want)
		}
	}
	if !errors.Is(missing, storage.ErrNotFound) || !errors.Is(badKey, storage.ErrBadKey) {
		t.Errorf("the sentinels are lost under *storage.Error: %v, %v", missing, badKey)
	}
}
