package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/passbatch/passbatch/gym"
)

// decodeJSON reads the body strictly into v: malformed JSON is 400, a
// wrong type or an unknown field 422 naming the field.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "a JSON body is required"}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &te):
			return invalid(te.Field, fmt.Sprintf("want a %s", te.Type))
		case errors.As(err, &pe):
			return invalid("", "times are RFC 3339, e.g. 2026-11-24T10:00:00+09:00")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid(f, "unknown field")
		}
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "malformed JSON: " + err.Error()}
	}
	if d.More() {
		return &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "one JSON value expected"}
	}
	return nil
}

// pageOf reads ?limit= (1..200, default 50) and ?after= (an id).
func pageOf(c *fiber.Ctx) (gym.Page, error) {
	p := gym.Page{Limit: 50}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return p, invalid("limit", "must be 1 to 200")
		}
		p.Limit = n
	}
	if v := c.Query("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return p, invalid("after", "must be an id")
		}
		p.After = n
	}
	return p, nil
}

func pathID(c *fiber.Ctx, name string) (int64, error) {
	n, err := strconv.ParseInt(c.Params(name), 10, 64)
	if err != nil || n <= 0 {
		return 0, notFound(name)
	}
	return n, nil
}

// list is a page of items, with next_after when there may be more.
func list[T any](items []T, next func(T) int64, p gym.Page) fiber.Map {
	m := fiber.Map{"items": items}
	if n := nextAfter(items, p, next); n > 0 {
		m["next_after"] = n
	}
	return m
}

// nextAfter is the cursor of the next page (the last item's id), or 0 when
// this page is the last.
func nextAfter[T any](items []T, p gym.Page, id func(T) int64) int64 {
	if len(items) == 0 || len(items) < p.Limit {
		return 0
	}
	return id(items[len(items)-1])
}

// errNUL refuses input holding a NUL byte: Postgres cannot store it in
// text, so it would fail deep in a query as a 500.
var errNUL = &APIError{Status: fiber.StatusBadRequest, Code: "bad_request", Message: "the input holds a NUL byte (0x00), which is not allowed"}

// refuseNUL answers 400 to a request whose query, form or JSON body holds
// a NUL byte, before any handler reads it. JSON is tokenized, so an
// escaped backslash followed by "u0000" stays text.
func refuseNUL(c *fiber.Ctx) error {
	if hasPercentNUL(c.Request().URI().QueryString()) {
		return errNUL
	}
	body := c.Body()
	switch ct := string(c.Request().Header.ContentType()); {
	case strings.HasPrefix(ct, fiber.MIMEApplicationForm):
		if hasPercentNUL(body) || bytes.IndexByte(body, 0) >= 0 {
			return errNUL
		}
	case strings.HasPrefix(ct, fiber.MIMEMultipartForm):
		if bytes.IndexByte(body, 0) >= 0 {
			return errNUL
		}
	case strings.HasPrefix(ct, fiber.MIMEApplicationJSON):
		if bytes.Contains(body, []byte(`\u0000`)) && jsonHasNUL(body) {
			return errNUL
		}
	}
	return c.Next()
}

// hasPercentNUL reports whether URL-encoded b encodes a NUL byte.
func hasPercentNUL(b []byte) bool {
	return bytes.Contains(b, []byte("%00")) || bytes.IndexByte(b, 0) >= 0
}

// jsonHasNUL reports whether a key or string of JSON body holds a NUL.
// Malformed JSON is left to the handler's decoder to refuse.
func jsonHasNUL(body []byte) bool {
	d := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}
