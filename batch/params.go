package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ParamRunAt is the business time of a run (RFC 3339). Jobs decide by it,
// never by the wall clock, so a rerun decides the same way.
const ParamRunAt = "run.at"

// Param is one job parameter.
type Param struct {
	Value string `json:"value"`
	// Identifying parameters make up the job instance's key.
	Identifying bool `json:"identifying"`
}

// Params are a job execution's parameters by name.
type Params map[string]Param

// ParseParams reads "key=value" arguments; a leading "-" ("-key=value")
// makes the parameter non-identifying, as in Spring Batch's command line.
func ParseParams(args []string) (Params, error) {
	p := Params{}
	for _, a := range args {
		ident := true
		if strings.HasPrefix(a, "-") {
			ident = false
			a = a[1:]
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: %q is not key=value", ErrInvalidParams, a)
		}
		if len(k) > 100 {
			return nil, fmt.Errorf("%w: parameter name %q is longer than 100 characters", ErrInvalidParams, k)
		}
		p[k] = Param{Value: v, Identifying: ident}
	}
	return p, nil
}

// With returns a copy of p with name set.
func (p Params) With(name, value string, identifying bool) Params {
	out := make(Params, len(p)+1)
	for k, v := range p {
		out[k] = v
	}
	out[name] = Param{Value: value, Identifying: identifying}
	return out
}

// String returns the value of name, or def when absent.
func (p Params) String(name, def string) string {
	if v, ok := p[name]; ok {
		return v.Value
	}
	return def
}

// Time parses name as RFC 3339.
func (p Params) Time(name string) (time.Time, error) {
	v, ok := p[name]
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %s is required", ErrInvalidParams, name)
	}
	t, err := time.Parse(time.RFC3339Nano, v.Value)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %s: want an RFC 3339 time, got %q", ErrInvalidParams, name, v.Value)
	}
	return t, nil
}

// Int parses name as an integer, or returns def when absent.
func (p Params) Int(name string, def int64) (int64, error) {
	v, ok := p[name]
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: want a whole number, got %q", ErrInvalidParams, name, v.Value)
	}
	return n, nil
}

// RunAt is the business time parameter; see ParamRunAt.
func (p Params) RunAt() (time.Time, error) { return p.Time(ParamRunAt) }

// JobKey is the hash of the identifying parameters that, with the job name,
// identifies a job instance.
func (p Params) JobKey() string {
	names := make([]string, 0, len(p))
	for k, v := range p {
		if v.Identifying {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, k := range names {
		fmt.Fprintf(h, "%s=%s;", k, p[k].Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}
