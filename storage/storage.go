// Package storage keeps report and export files: a local directory
// (STORAGE_DIR) behind a small interface.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrNotFound is returned for a key that holds no file.
var ErrNotFound = errors.New("file not found")

// ErrBadKey is returned for a key that is empty, absolute or climbs out
// of the store ("..").
var ErrBadKey = errors.New("invalid file key")

// Info describes a stored file.
type Info struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// Store keeps files by key ("reports/daily/2026-11-24.csv"). Its methods
// return *Error, which says whether a retry may help.
type Store interface {
	// Put stores r under key atomically (readers never see a partial file).
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open opens key for reading; the caller closes it.
	Open(ctx context.Context, key string) (ReadSeekCloser, error)
	// Stat describes key.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List describes the files under prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// ReadSeekCloser is an open stored file.
type ReadSeekCloser interface {
	io.ReadSeeker
	io.Closer
}

// ErrNotConfigured is returned by a process that opened no storage (it
// does not use files: the scheduler, ptctl jobs).
var ErrNotConfigured = errors.New("storage is not configured in this process")

// None is the Store of a process that uses no files: every call returns
// ErrNotConfigured.
type None struct{}

// Put implements Store.
func (None) Put(context.Context, string, io.Reader) (int64, error) { return 0, ErrNotConfigured }

// Open implements Store.
func (None) Open(context.Context, string) (ReadSeekCloser, error) { return nil, ErrNotConfigured }

// Stat implements Store.
func (None) Stat(context.Context, string) (Info, error) { return Info{}, ErrNotConfigured }

// Delete implements Store.
func (None) Delete(context.Context, string) error { return ErrNotConfigured }

// List implements Store.
func (None) List(context.Context, string) ([]Info, error) { return nil, ErrNotConfigured }

// Local is a Store in a directory.
type Local struct{ dir string }

// NewLocal returns a store in dir, creating it.
func NewLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage dir %s: %w", dir, err)
	}
	return &Local{dir: dir}, nil
}

func (l *Local) path(key string) (string, error) {
	clean := path.Clean("/" + key)
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") || clean == "/" {
		return "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return filepath.Join(l.dir, filepath.FromSlash(clean[1:])), nil
}

func (l *Local) put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := l.path(key)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	// 1 MiB writes: a merged export of 98 MB in 32 KiB pieces (io.Copy's)
	// was 3,000 writes, each a hand-off from the writing goroutine.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, r, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

func (l *Local) open(ctx context.Context, key string) (ReadSeekCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, err
}

func (l *Local) stat(ctx context.Context, key string) (Info, error) {
	p, err := l.path(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (l *Local) delete(ctx context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (l *Local) list(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	// Walk only the directory the prefix lies in.
	root := filepath.Join(l.dir, filepath.FromSlash(path.Dir(prefix+"x")))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return err
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	n, err := l.put(ctx, key, r)
	return n, fail("put", key, err)
}

// Open implements Store.
func (l *Local) Open(ctx context.Context, key string) (ReadSeekCloser, error) {
	f, err := l.open(ctx, key)
	return f, fail("open", key, err)
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	i, err := l.stat(ctx, key)
	return i, fail("stat", key, err)
}

// Delete implements Store; deleting a missing key is not an error.
func (l *Local) Delete(ctx context.Context, key string) error {
	return fail("delete", key, l.delete(ctx, key))
}

// List implements Store.
func (l *Local) List(ctx context.Context, prefix string) ([]Info, error) {
	infos, err := l.list(ctx, prefix)
	return infos, fail("list", prefix, err)
}
