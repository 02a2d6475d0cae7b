package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/storage"
)

// sendFile streams f as an attachment named name, never holding it in
// memory: one byte range (Range: bytes=…) is answered 206 (several ranges
// get the whole file), If-None-Match with the ETag 304, HEAD with no body.
// f is closed once the answer is sent.
func sendFile(c *fiber.Ctx, f storage.ReadSeekCloser, info storage.Info, name, ctype, etag string) error {
	c.Set(fiber.HeaderContentType, ctype)
	c.Set(fiber.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	c.Set(fiber.HeaderLastModified, info.ModTime.UTC().Format(http.TimeFormat))
	if etag != "" {
		c.Set(fiber.HeaderETag, etag)
		if c.Get(fiber.HeaderIfNoneMatch) == etag {
			f.Close()
			return c.SendStatus(fiber.StatusNotModified)
		}
	}
	start, length, status := int64(0), info.Size, fiber.StatusOK
	if r := c.Get(fiber.HeaderRange); r != "" && (c.Get(fiber.HeaderIfRange) == "" || c.Get(fiber.HeaderIfRange) == etag) {
		s, n, err := byteRange(r, info.Size)
		switch {
		case errors.Is(err, errUnsatisfiable):
			f.Close()
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes */%d", info.Size))
			return &APIError{Status: fiber.StatusRequestedRangeNotSatisfiable, Code: "bad_range", Message: "the range is outside the file"}
		case err == nil:
			start, length, status = s, n, fiber.StatusPartialContent
			c.Set(fiber.HeaderContentRange, fmt.Sprintf("bytes %d-%d/%d", s, s+n-1, info.Size))
		}
	}
	if c.Method() == fiber.MethodHead {
		f.Close()
		c.Set(fiber.HeaderContentLength, strconv.FormatInt(length, 10))
		return c.SendStatus(status)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek %s: %w", info.Key, err)
	}
	c.Status(status).Response().SetBodyStream(limitedFile{io.LimitReader(f, length), f}, int(length))
	return nil
}

// limitedFile reads part of a file and closes the file (fasthttp closes a
// body stream that is an io.Closer once it is sent).
type limitedFile struct {
	io.Reader
	io.Closer
}

var errUnsatisfiable = errors.New("range not satisfiable")

// byteRange parses a single-range Range header against a file of size
// bytes: errUnsatisfiable when it lies outside, another error when it is
// not one range we serve (the whole file is sent then).
func byteRange(h string, size int64) (start, length int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, errors.New("not a single byte range")
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, errors.New("malformed range")
	}
	if first == "" { // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, errUnsatisfiable
		}
		n = min(n, size)
		return size - n, n, nil
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, errors.New("malformed range")
	}
	if s >= size {
		return 0, 0, errUnsatisfiable
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return 0, 0, errors.New("malformed range")
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, nil
}
