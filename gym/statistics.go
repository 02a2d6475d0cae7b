package gym

import (
	"context"
	"fmt"
	"time"

	"github.com/passbatch/passbatch/models"
)

// Granularities of the statistics, with the longest range each serves and
// the range shown when none is asked for.
var granularities = map[string]struct{ max, def time.Duration }{
	"hour": {31 * 24 * time.Hour, 24 * time.Hour},
	"day":  {366 * 24 * time.Hour, 10 * 24 * time.Hour},
	"week": {3 * 366 * 24 * time.Hour, 12 * 7 * 24 * time.Hour},
}

// StatRow is one bucket of bookings: all, attended, cancelled.
type StatRow struct {
	At        time.Time `json:"at" bun:"at"`
	All       int64     `json:"all_count" bun:"all_count"`
	Attended  int64     `json:"attended_count" bun:"attended_count"`
	Cancelled int64     `json:"cancelled_count" bun:"cancelled_count"`
}

// Stats are the statistics of [From, To) by Granularity.
type Stats struct {
	Granularity string    `json:"granularity"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Items       []StatRow `json:"items"`
}

// Statistics sums the hourly statistics into hours, days or weeks of the
// gym's clock (Asia/Seoul) over [from, to); nil ends default to now and the
// granularity's usual range (24 hours, 10 days, 12 weeks).
func (s *Service) Statistics(ctx context.Context, granularity string, from, to *time.Time) (*Stats, error) {
	g, ok := granularities[granularity]
	if !ok {
		return nil, &FieldError{Field: "granularity", Message: "hour, day or week"}
	}
	st := &Stats{Granularity: granularity, To: s.now()}
	if to != nil {
		st.To = *to
	}
	st.From = st.To.Add(-g.def)
	if from != nil {
		st.From = *from
	}
	switch {
	case !st.From.Before(st.To):
		return nil, &FieldError{Field: "to", Message: "must be after from"}
	case st.To.Sub(st.From) > g.max:
		return nil, &FieldError{Field: "to", Message: fmt.Sprintf("at most %s of %s rows", g.max, granularity)}
	}
	st.Items = []StatRow{}
	err := s.DB.NewRaw(`SELECT date_trunc(?, statistics_at AT TIME ZONE ?) AT TIME ZONE ? AS at,
			sum(all_count) AS all_count, sum(attended_count) AS attended_count, sum(cancelled_count) AS cancelled_count
		FROM statistics WHERE statistics_at >= ? AND statistics_at < ? GROUP BY 1 ORDER BY 1`,
		granularity, models.Seoul.String(), models.Seoul.String(), st.From, st.To).Scan(ctx, &st.Items)
	if err != nil {
		return nil, fmt.Errorf("read statistics: %w", err)
	}
	return st, nil
}
