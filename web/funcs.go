package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/passbatch/passbatch/models"
)

// templateFuncs are the helpers the templates use; html/template escapes
// everything they return.
var templateFuncs = template.FuncMap{
	"kst": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.In(models.Seoul).Format("2006-01-02 15:04")
		case *time.Time:
			if v == nil {
				return "-"
			}
			return v.In(models.Seoul).Format("2006-01-02 15:04")
		}
		return "-"
	},
	"day": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.In(models.Seoul).Format("2006.01.02")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.In(models.Seoul).Format("2006.01.02")
		}
		return ""
	},
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
	"pct":       func(f float64) string { return fmt.Sprintf("%.0f", f*100) },
	"lower":     strings.ToLower,
	"hasPrefix": strings.HasPrefix,
	"dur": func(a, b *time.Time) string {
		if a == nil {
			return "-"
		}
		end := time.Now()
		if b != nil {
			end = *b
		}
		return end.Sub(*a).Round(time.Millisecond).String()
	},
	"add": func(a, b int) int { return a + b },
	// isoDay and clock fill date and time inputs in the gym's zone.
	"isoDay": func(t time.Time) string { return t.In(models.Seoul).Format("2006-01-02") },
	"clock":  func(t time.Time) string { return t.In(models.Seoul).Format("15:04") },
	"eta":    etaText,
	"spark":  sparkline,
	"rate":   rateText,
	"rate1":  func(v float64) string { return rateText(&v) },
	// card and rows pass a partial its data with the page's dictionary.
	"card": func(l map[string]string, p any) map[string]any { return map[string]any{"L": l, "P": p} },
	"rows": func(l map[string]string, b any) map[string]any { return map[string]any{"L": l, "B": b} },
	"deref2": func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	},
}
