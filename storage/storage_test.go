package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/passbatch/passbatch/internal/testenv"
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

// TestS3Compose: composing a file on S3 copies the stored ranges of at
// least 5 MiB on the server (UploadPartCopy), uploads only what lies
// between them (gathered into parts of at least 5 MiB, but the last), and
// leaves no temporary object behind.
func TestS3Compose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake := testenv.NewS3(t, "exports")
	s, err := storage.NewS3(ctx, "s3://exports/p", storage.S3Options{Endpoint: fake.Endpoint, Insecure: true, AccessKey: "k", Secret: "s", Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 6<<20) }
	for i := 1; i <= 3; i++ {
		// A 40-byte header, then the payload the file takes.
		if _, err := s.Put(ctx, fmt.Sprintf("parts/%d", i), io.MultiReader(strings.NewReader(strings.Repeat("h", 40)), bytes.NewReader(big(i)))); err != nil {
			t.Fatal(err)
		}
	}
	uploadedBefore := fake.Uploaded.Load()
	pieces := []storage.Piece{{Data: []byte("id,name\n")}}
	var want bytes.Buffer
	want.WriteString("id,name\n")
	for i := 1; i <= 3; i++ {
		pieces = append(pieces, storage.Piece{Key: fmt.Sprintf("parts/%d", i), Offset: 40, Length: 6 << 20})
		want.Write(big(i))
	}
	pieces = append(pieces, storage.Piece{Data: []byte("the end\n")})
	want.WriteString("the end\n")
	n, err := s.Compose(ctx, "exports/1/file.csv", pieces)
	if err != nil || n != int64(want.Len()) {
		t.Fatalf("compose: %d bytes, %v; want %d", n, err, want.Len())
	}
	f, err := s.Open(ctx, "exports/1/file.csv")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the composed file differs (%d bytes, want %d)", len(got), want.Len())
	}
	// The header must join 5 MiB to stand as a part: the first payload is
	// uploaded with it; the second and third are copied on the server.
	if uploaded := fake.Uploaded.Load() - uploadedBefore; uploaded > 7<<20 {
		t.Fatalf("the client uploaded %d bytes of a %d-byte file: the large parts were not copied on the server", uploaded, want.Len())
	}
	if fake.PartCopyBytes.Load() < 12<<20 {
		t.Fatalf("the server copied %d bytes, want the two later payloads at least", fake.PartCopyBytes.Load())
	}
	if left, _ := s.List(ctx, "exports/1/"); len(left) != 1 {
		t.Fatalf("temporary objects left: %v", left)
	}
}
