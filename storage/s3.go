package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Store in an S3-compatible bucket, under a key prefix.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string
}

// S3Options locate the bucket and sign the requests (config.Load reads
// them from S3_ENDPOINT, S3_INSECURE, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION). Endpoint defaults to
// s3.amazonaws.com; Insecure means plain HTTP.
type S3Options struct {
	Endpoint          string
	Insecure          bool
	AccessKey, Secret string
	Region            string
}

// NewS3 opens the store for rawURL, s3://bucket/prefix.
func NewS3(ctx context.Context, rawURL string, o S3Options) (*S3, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("storage: want s3://bucket/prefix, got %q", rawURL)
	}
	if o.Endpoint == "" {
		o.Endpoint = "s3.amazonaws.com"
	}
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(o.AccessKey, o.Secret, ""), Secure: !o.Insecure, Region: o.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: s3 client: %w", err)
	}
	s := &S3{client: c, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}
	ok, err := c.BucketExists(ctx, s.bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: s3 bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("storage: s3 bucket %s does not exist", s.bucket)
	}
	return s, nil
}

func (s *S3) object(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return path.Join(s.prefix, key), nil
}

func notFound(err error, key string) error {
	if minio.ToErrorResponse(err).Code == "NoSuchKey" {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return err
}

// put is a streamed (multipart when large) upload; S3 makes
// an object visible only once complete. The payload is sent unsigned
// (UNSIGNED-PAYLOAD, as over HTTPS) so that S3-compatible servers that do not
// decode aws-chunked streaming signatures accept it.
func (s *S3) put(ctx context.Context, key string, r io.Reader) (int64, error) {
	obj, err := s.object(key)
	if err != nil {
		return 0, err
	}
	info, err := s.client.PutObject(ctx, s.bucket, obj, r, -1, minio.PutObjectOptions{PartSize: 16 << 20, DisableContentSha256: true})
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

func (s *S3) open(ctx context.Context, key string) (ReadSeekCloser, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if _, err := s.stat(ctx, key); err != nil {
		return nil, err
	}
	o, err := s.client.GetObject(ctx, s.bucket, obj, minio.GetObjectOptions{})
	if err != nil {
		return nil, notFound(err, key)
	}
	return o, nil
}

func (s *S3) stat(ctx context.Context, key string) (Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, obj, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, notFound(err, key)
	}
	return Info{Key: key, Size: st.Size, ModTime: st.LastModified}, nil
}

func (s *S3) delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, obj, minio.RemoveObjectOptions{}); err != nil && !errors.Is(notFound(err, key), ErrNotFound) {
		return err
	}
	return nil
}

func (s *S3) list(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	base := s.prefix
	if base != "" {
		base += "/"
	}
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: base + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		out = append(out, Info{Key: strings.TrimPrefix(o.Key, base), Size: o.Size, ModTime: o.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	n, err := s.put(ctx, key, r)
	return n, fail("put", key, err)
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, key string) (ReadSeekCloser, error) {
	f, err := s.open(ctx, key)
	return f, fail("open", key, err)
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	i, err := s.stat(ctx, key)
	return i, fail("stat", key, err)
}

// Delete implements Store; deleting a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	return fail("delete", key, s.delete(ctx, key))
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	infos, err := s.list(ctx, prefix)
	return infos, fail("list", prefix, err)
}

// Open returns the store a STORAGE_URL names (s3://bucket/prefix), or the
// local directory dir when storageURL is empty.
func Open(ctx context.Context, storageURL, dir string, s3 S3Options) (Store, error) {
	if storageURL == "" {
		return NewLocal(dir)
	}
	return NewS3(ctx, storageURL, s3)
}
