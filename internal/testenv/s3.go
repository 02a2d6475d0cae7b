package testenv

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-process S3 server (gofakes3) on loopback with one bucket,
// which also serves UploadPartCopy (a multipart part copied from a range
// of a stored object), which gofakes3 lacks: it counts those copies and
// the bytes uploaded in ordinary requests, so a test can tell what the
// server copied from what the client sent.
type S3 struct {
	Endpoint, Bucket string
	// PartCopies counts UploadPartCopy requests; PartCopyBytes their bytes.
	PartCopies, PartCopyBytes atomic.Int64
	// Uploaded counts the bytes of ordinary PUT bodies.
	Uploaded atomic.Int64
	backend  *s3mem.Backend
	inner    http.Handler
}

// NewS3 starts the server with bucket and stops it when t ends.
func NewS3(t T, bucket string) *S3 {
	t.Helper()
	s := &S3{Bucket: bucket, backend: s3mem.New()}
	s.inner = gofakes3.New(s.backend).Server()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	if err := s.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	s.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// ServeHTTP answers UploadPartCopy itself (reading the source range and
// handing gofakes3 an ordinary part upload), and passes the rest on.
func (s *S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src := r.Header.Get("X-Amz-Copy-Source")
	if r.Method != http.MethodPut || src == "" || r.URL.Query().Get("uploadId") == "" {
		if r.Method == http.MethodPut && src == "" {
			s.Uploaded.Add(max(r.ContentLength, 0))
		}
		s.inner.ServeHTTP(w, r)
		return
	}
	body, err := s.copySource(src, r.Header.Get("X-Amz-Copy-Source-Range"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.PartCopies.Add(1)
	s.PartCopyBytes.Add(int64(len(body)))
	part := r.Clone(r.Context())
	for _, h := range []string{"X-Amz-Copy-Source", "X-Amz-Copy-Source-Range", "X-Amz-Copy-Source-If-Match", "X-Amz-Content-Sha256"} {
		part.Header.Del(h)
	}
	part.Body, part.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	part.Header.Set("Content-Length", strconv.Itoa(len(body)))
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, part)
	if rec.Code != http.StatusOK {
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName      xml.Name `xml:"CopyPartResult"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
	}{ETag: rec.Header().Get("ETag"), LastModified: time.Now().UTC().Format(time.RFC3339)})
}

// copySource reads "bucket/key" (URL-escaped), within "bytes=a-b" when
// given.
func (s *S3) copySource(src, rng string) ([]byte, error) {
	src = strings.TrimPrefix(src, "/")
	if i := strings.Index(src, "?"); i >= 0 {
		src = src[:i]
	}
	bucket, key, ok := strings.Cut(src, "/")
	if !ok {
		return nil, fmt.Errorf("copy source %q", src)
	}
	if k, err := urlUnescape(key); err == nil {
		key = k
	}
	obj, err := s.backend.GetObject(bucket, key, nil)
	if err != nil {
		return nil, err
	}
	defer obj.Contents.Close()
	all, err := io.ReadAll(obj.Contents)
	if err != nil {
		return nil, err
	}
	if rng == "" {
		return all, nil
	}
	var a, b int64
	if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &a, &b); err != nil || a < 0 || b >= int64(len(all)) || a > b {
		return nil, fmt.Errorf("copy source range %q of %d bytes", rng, len(all))
	}
	return all[a : b+1], nil
}

func urlUnescape(s string) (string, error) { return url.PathUnescape(s) }
