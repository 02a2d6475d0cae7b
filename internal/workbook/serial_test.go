package workbook

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestExcelSerial checks the day count against time's own arithmetic and
// known serials (Excel shows 25569 for 1970-01-01, 45000.5 for
// 2023-03-15 12:00), to the nanosecond, for times 1900 to 2190 and in
// other zones.
func TestExcelSerial(t *testing.T) {
	epoch := time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want float64
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 25569},
		{time.Date(2023, 3, 15, 12, 0, 0, 0, time.UTC), 45000.5},
		{time.Date(1900, 3, 1, 6, 0, 0, 0, time.UTC), 61.25},
		{time.Date(2026, 11, 24, 10, 0, 0, 0, time.FixedZone("KST", 9*3600)), 46350 + 10.0/24},
	} {
		if got := excelSerial(c.t); got != c.want {
			t.Errorf("excelSerial(%v) = %v, want %v", c.t, got, c.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		at := time.Date(1900+r.IntN(290), time.Month(1+r.IntN(12)), 1+r.IntN(31), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1e9), time.UTC)
		d := at.Sub(epoch)
		want := float64(d/(24*time.Hour)) + float64(d%(24*time.Hour))/float64(24*time.Hour)
		if got := excelSerial(at); got != want {
			t.Fatalf("excelSerial(%v) = %v, want %v", at, got, want)
		}
	}
	for y := -1000; y <= 3000; y += 7 {
		for _, m := range []time.Month{1, 2, 3, 12} {
			want := int(time.Date(y, m, 28, 0, 0, 0, 0, time.UTC).Unix() / 86400)
			if got := daysFromCivil(y, int(m), 28); got != want {
				t.Fatalf("daysFromCivil(%d, %d, 28) = %d, want %d", y, m, got, want)
			}
		}
	}
}
