package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
)

// Piece is a piece of a file to compose: Data, or Length bytes at Offset
// of the stored file Key.
type Piece struct {
	Data           []byte
	Key            string
	Offset, Length int64
}

// Composer is a Store that assembles a file from pieces on its own side:
// a large range of a stored file is copied by the server, never read and
// written again by this process.
type Composer interface {
	// Compose stores at key the concatenation of pieces and returns its
	// size. The file appears whole or not at all.
	Compose(ctx context.Context, key string, pieces []Piece) (int64, error)
}

// MinCopyPart is the smallest range S3 copies server-side as a part of a
// multipart upload (UploadPartCopy); every part but the last must be at
// least this large.
const MinCopyPart = 5 << 20

// Compose implements Composer with a multipart upload whose parts are
// server-side copies (UploadPartCopy) of the stored ranges of at least
// MinCopyPart bytes; the pieces between them (data, short ranges) are
// gathered by this process, at most about 2 x MinCopyPart bytes at a
// time, into temporary objects of at least MinCopyPart bytes (the last
// may be shorter), which are removed after.
func (s *S3) Compose(ctx context.Context, key string, pieces []Piece) (int64, error) {
	n, err := s.compose(ctx, key, pieces)
	return n, fail("compose", key, err)
}

func (s *S3) compose(ctx context.Context, key string, pieces []Piece) (int64, error) {
	obj, err := s.object(key)
	if err != nil {
		return 0, err
	}
	c := &composition{s: s, key: key, token: rand.Text()[:8]}
	defer c.removeTemps(context.WithoutCancel(ctx))
	for _, p := range pieces {
		if err := c.add(ctx, p); err != nil {
			return 0, err
		}
	}
	if err := c.flush(ctx); err != nil {
		return 0, err
	}
	if len(c.srcs) == 0 {
		return s.put(ctx, key, bytes.NewReader(nil))
	}
	info, err := s.client.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: obj}, c.srcs...)
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

// composition is the sources of one Compose being gathered.
type composition struct {
	s       *S3
	key     string
	srcs    []minio.CopySrcOptions
	pending bytes.Buffer // bytes not yet in a source
	temps   []string
	token   string // names this composition's temporary objects
}

// add takes one piece. A stored range becomes a copy source when what is
// pending can stand as a part of its own first: a short pending is topped
// up to MinCopyPart from the range's head if at least MinCopyPart of the
// range is left to copy, else the whole range is gathered. What is pending
// is stored once it reaches MinCopyPart, so it never holds more than
// about 2 x MinCopyPart bytes.
func (c *composition) add(ctx context.Context, p Piece) error {
	if p.Data != nil {
		c.pending.Write(p.Data)
		return c.flushFull(ctx)
	}
	if p.Length < MinCopyPart {
		return c.gather(ctx, p)
	}
	if short := c.pending.Len(); short > 0 && short < MinCopyPart {
		top := int64(MinCopyPart - short)
		if p.Length-top < MinCopyPart {
			return c.gather(ctx, p)
		}
		if err := c.gather(ctx, Piece{Key: p.Key, Offset: p.Offset, Length: top}); err != nil {
			return err
		}
		p.Offset, p.Length = p.Offset+top, p.Length-top
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	obj, err := c.s.object(p.Key)
	if err != nil {
		return err
	}
	c.srcs = append(c.srcs, minio.CopySrcOptions{Bucket: c.s.bucket, Object: obj, MatchRange: true, Start: p.Offset, End: p.Offset + p.Length - 1})
	return nil
}

// gather appends a stored range's bytes to what is pending, then stores
// what is pending if it is large enough.
func (c *composition) gather(ctx context.Context, p Piece) error {
	obj, err := c.s.object(p.Key)
	if err != nil {
		return err
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(p.Offset, p.Offset+p.Length-1); err != nil {
		return err
	}
	r, err := c.s.client.GetObject(ctx, c.s.bucket, obj, opts)
	if err != nil {
		return notFound(err, p.Key)
	}
	defer r.Close()
	n, err := io.Copy(&c.pending, r)
	if err == nil && n != p.Length {
		err = fmt.Errorf("%s: %d of %d bytes at %d", p.Key, n, p.Length, p.Offset)
	}
	if err != nil {
		return notFound(err, p.Key)
	}
	return c.flushFull(ctx)
}

// flushFull stores what is pending once it can stand as a part.
func (c *composition) flushFull(ctx context.Context) error {
	if c.pending.Len() < MinCopyPart {
		return nil
	}
	return c.flush(ctx)
}

// flush stores what is pending as a temporary object, a source.
func (c *composition) flush(ctx context.Context) error {
	if c.pending.Len() == 0 {
		return nil
	}
	// Named apart from any other composition of the same key running
	// at once (a repeated merge), which would remove them under it.
	tmp := fmt.Sprintf("%s.compose-%s-%d", c.key, c.token, len(c.temps))
	if _, err := c.s.put(ctx, tmp, bytes.NewReader(c.pending.Bytes())); err != nil {
		return err
	}
	c.temps = append(c.temps, tmp)
	obj, _ := c.s.object(tmp)
	c.srcs = append(c.srcs, minio.CopySrcOptions{Bucket: c.s.bucket, Object: obj})
	c.pending.Reset()
	return nil
}

func (c *composition) removeTemps(ctx context.Context) {
	for _, t := range c.temps {
		_ = c.s.delete(ctx, t)
	}
}
