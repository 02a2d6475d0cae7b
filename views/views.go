// Package views holds the HTML templates and static assets of the pages,
// embedded in the binary (no CDN: the gym's network may have no internet).
package views

import "embed"

// Files are the templates (*.html) and static/ assets.
//
//go:embed *.html static
var Files embed.FS
