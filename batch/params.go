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

// ParamType is a job parameter's type, stored as Spring Batch 5 stores it:
// the Java class name in batch_job_execution_params.parameter_type.
type ParamType string

// Parameter types. A date is an RFC 3339 instant, stored in UTC as Spring
// Batch 5's java.util.Date converter writes and reads it.
const (
	TypeString ParamType = "java.lang.String"
	TypeLong   ParamType = "java.lang.Long"
	TypeDouble ParamType = "java.lang.Double"
	TypeDate   ParamType = "java.util.Date"
)

// Run-id launches: ParamRunID is the identifying counter a --next launch
// increments (Spring's RunIdIncrementer).
const ParamRunID = "run.id"

// ParamSpec declares one job parameter.
type ParamSpec struct {
	Name     string
	Type     ParamType
	Required bool
	// Description is shown by ptctl jobs list and in errors.
	Description string
}

// builtinParams are known to every job.
var builtinParams = []ParamSpec{
	{Name: ParamRunAt, Type: TypeDate, Description: "the run's business time"},
	{Name: ParamRunID, Type: TypeLong, Description: "the run counter of --next launches"},
	{Name: ParamPartitions, Type: TypeLong, Description: "how many partitions (non-identifying)"},
}

// paramSpec finds the spec of name among the job's and the built-in ones.
func (j *Job) paramSpec(name string) (ParamSpec, bool) {
	for _, s := range j.Parameters {
		if s.Name == name {
			return s, true
		}
	}
	for _, s := range builtinParams {
		if s.Name == name {
			return s, true
		}
	}
	return ParamSpec{}, false
}

func (j *Job) validateParams() error {
	for _, s := range j.Parameters {
		switch s.Type {
		case TypeString, TypeLong, TypeDouble, TypeDate:
		default:
			return fmt.Errorf("batch: job %q: parameter %q has type %q; want one of java.lang.String, java.lang.Long, java.lang.Double, java.util.Date", j.Name, s.Name, s.Type)
		}
	}
	return nil
}

// checkParams refuses unknown keys and values of the wrong type (when the
// job declares its parameters); required is false before Prepare has
// filled defaults, true after.
func (j *Job) checkParams(p Params, required bool) error {
	if j.Parameters == nil {
		return nil
	}
	for name, v := range p {
		spec, ok := j.paramSpec(name)
		if !ok {
			return fmt.Errorf("%w: %s does not take %q (known: %s)", ErrInvalidParams, j.Name, name, strings.Join(j.knownParams(), ", "))
		}
		if err := spec.Type.check(v.Value); err != nil {
			return fmt.Errorf("%w: %s: %s: %v", ErrInvalidParams, j.Name, name, err)
		}
	}
	if required {
		for _, s := range j.Parameters {
			if _, ok := p[s.Name]; s.Required && !ok {
				return fmt.Errorf("%w: %s needs %s (%s, %s)", ErrInvalidParams, j.Name, s.Name, s.Type, s.Description)
			}
		}
	}
	return nil
}

// knownParams lists the parameter names the job takes.
func (j *Job) knownParams() []string {
	var out []string
	for _, s := range j.Parameters {
		out = append(out, s.Name)
	}
	for _, s := range builtinParams {
		out = append(out, s.Name)
	}
	return out
}

// check says whether v is a value of the type.
func (t ParamType) check(v string) error {
	switch t {
	case TypeLong:
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("want a whole number (long), got %q", v)
		}
	case TypeDouble:
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return fmt.Errorf("want a number (double), got %q", v)
		}
	case TypeDate:
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return fmt.Errorf("want an RFC 3339 time (date), got %q", v)
		}
	}
	return nil
}

// storedType is the parameter_type a parameter is saved with.
func (j *Job) storedType(name string) ParamType {
	if s, ok := j.paramSpec(name); ok {
		return s.Type
	}
	return TypeString
}

// storedValue is a parameter's value as saved: dates in UTC, as Spring
// Batch 5 writes java.util.Date (Instant.toString()).
func storedValue(t ParamType, v string) string {
	if t != TypeDate {
		return v
	}
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return v
	}
	return at.UTC().Format(time.RFC3339Nano)
}
