package process

import "testing"

// TestPprofOnlyOnLoopback: profiles are served on a loopback
// METRICS_ADDR by default, never on an address others reach unless PPROF=on.
func TestPprofOnlyOnLoopback(t *testing.T) {
	for _, c := range []struct {
		mode, addr string
		want       bool
	}{
		{"loopback", "127.0.0.1:9101", true},
		{"loopback", "localhost:9101", true},
		{"loopback", "[::1]:9101", true},
		{"loopback", ":9101", false}, // every interface
		{"loopback", "0.0.0.0:9101", false},
		{"loopback", "10.1.2.3:9101", false},
		{"off", "127.0.0.1:9101", false},
		{"on", ":9101", true},
	} {
		if got := PprofOn(c.mode, c.addr); got != c.want {
			t.Errorf("PPROF=%s METRICS_ADDR=%s: pprof %v, want %v", c.mode, c.addr, got, c.want)
		}
	}
}
