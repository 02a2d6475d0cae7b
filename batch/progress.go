package batch

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// PartitionDetail is one partition of a partitioned step as an operator
// follows it: its key range and how far it got, who holds it, its counts
// and pace, and whether it lags behind the others.
type PartitionDetail struct {
	StepExecutionID int64      `bun:"step_execution_id" json:"step_execution_id"`
	Parent          int64      `bun:"parent_step_execution_id" json:"-"`
	Key             string     `bun:"partition_key" json:"partition_key"`
	StepName        string     `bun:"step_name" json:"step_name"` // Spring's name: "deduct:partition3"
	RangeStart      int64      `bun:"range_start" json:"range_start"`
	RangeEnd        int64      `bun:"range_end" json:"range_end"`
	Status          string     `bun:"status" json:"status"`
	WorkerID        *string    `bun:"worker_id" json:"worker_id,omitempty"`
	Read            int64      `bun:"read_count" json:"read_count"`
	Write           int64      `bun:"write_count" json:"write_count"`
	Skip            int64      `bun:"skip_count" json:"skip_count"`
	Commits         int64      `bun:"commit_count" json:"commit_count"`
	LastKey         *int64     `bun:"last_key" json:"last_key,omitempty"`
	StartTime       *time.Time `bun:"start_time" json:"start_time,omitempty"`
	EndTime         *time.Time `bun:"end_time" json:"end_time,omitempty"`
	LastUpdated     time.Time  `bun:"last_updated" json:"last_updated"`
	// Progress is the share of the key range behind the checkpoint, 0..1.
	Progress float64 `bun:"-" json:"progress"`
	// ItemsPerSecond is items read over the time it has run.
	ItemsPerSecond float64 `bun:"-" json:"items_per_second"`
	// Straggler marks a running partition that made no progress for five
	// of the step's median chunk intervals, or runs at under a quarter of
	// the median pace.
	Straggler bool `bun:"-" json:"straggler"`
}

// stragglerIdle is the least silence that marks a straggler, however short
// the chunks.
const stragglerIdle = 5 * time.Second

// loadPartitions returns the partitions of execution id's steps by parent,
// and the database's clock.
func (e *Engine) loadPartitions(ctx context.Context, id int64) (map[int64][]PartitionDetail, time.Time, error) {
	var rows []PartitionDetail
	var now time.Time
	if err := e.db.NewSelect().ColumnExpr("now()").Scan(ctx, &now); err != nil {
		return nil, now, fmt.Errorf("read the clock: %w", err)
	}
	err := e.db.NewRaw(`SELECT s.step_execution_id, s.parent_step_execution_id, coalesce(s.partition_key, '') AS partition_key, s.step_name,
			coalesce(s.range_start, 0) AS range_start, coalesce(s.range_end, 0) AS range_end, s.status, s.worker_id,
			s.read_count, s.write_count, s.read_skip_count + s.process_skip_count + s.write_skip_count AS skip_count, s.commit_count,
			s.start_time, s.end_time, s.last_updated,
			CASE WHEN c.short_context LIKE '{%' THEN (c.short_context::jsonb ->> ?)::bigint END AS last_key
		FROM batch_step_execution s LEFT JOIN batch_step_execution_context c USING (step_execution_id)
		WHERE s.job_execution_id = ? AND s.parent_step_execution_id IS NOT NULL ORDER BY s.step_execution_id`, checkpointKey, id).Scan(ctx, &rows)
	if err != nil {
		return nil, now, fmt.Errorf("load partitions: %w", err)
	}
	out := map[int64][]PartitionDetail{}
	for _, p := range rows {
		out[p.Parent] = append(out[p.Parent], p)
	}
	for parent := range out {
		pace(out[parent], now)
	}
	return out, now, nil
}

// pace fills each partition's progress and rate and marks the stragglers.
func pace(parts []PartitionDetail, now time.Time) {
	var intervals, rates []float64
	for i := range parts {
		p := &parts[i]
		width := float64(p.RangeEnd - p.RangeStart)
		switch {
		case !Running(p.Status):
			p.Progress = 1
		case p.LastKey != nil && width > 0:
			p.Progress = min(max(float64(*p.LastKey+1-p.RangeStart)/width, 0), 1)
		}
		if p.StartTime == nil {
			continue
		}
		end := p.LastUpdated
		if p.EndTime != nil {
			end = *p.EndTime
		}
		if ran := end.Sub(*p.StartTime).Seconds(); ran > 0 {
			p.ItemsPerSecond = float64(p.Read) / ran
			if p.Commits > 0 {
				intervals = append(intervals, ran/float64(p.Commits))
				rates = append(rates, p.ItemsPerSecond)
			}
		}
	}
	if len(intervals) == 0 {
		return
	}
	chunk := time.Duration(median(intervals) * float64(time.Second))
	rate := median(rates)
	for i := range parts {
		p := &parts[i]
		if !Running(p.Status) || p.StartTime == nil {
			continue
		}
		idle := now.Sub(p.LastUpdated)
		ran := now.Sub(*p.StartTime)
		p.Straggler = idle > max(5*chunk, stragglerIdle) || (ran > 3*chunk+stragglerIdle && float64(p.Read)/ran.Seconds() < rate/4)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// stepPace fills a step's items per second (while it runs, the summed pace
// of its running partitions; after, the average) and, while it runs, its
// ETA from its partitions' key ranges (the share behind their checkpoints).
func stepPace(sd *StepDetail, now time.Time) {
	if sd.StartTime == nil {
		return
	}
	end := now
	if sd.EndTime != nil {
		end = *sd.EndTime
	}
	ran := end.Sub(*sd.StartTime).Seconds()
	if ran <= 0 {
		return
	}
	ips := float64(sd.LiveRead) / ran
	sd.ItemsPerSecond = &ips
	if !Running(sd.Status) || len(sd.Partitions) == 0 {
		return
	}
	// While it runs, the pace now: the running partitions' paces summed
	// (each over its own short life), not the average since the start.
	current, running := 0.0, 0
	for _, p := range sd.Partitions {
		if Running(p.Status) && p.StartTime != nil {
			current += p.ItemsPerSecond
			running++
		}
	}
	if running > 0 {
		sd.ItemsPerSecond = &current
	}
	var done, width float64
	for _, p := range sd.Partitions {
		w := float64(p.RangeEnd - p.RangeStart)
		done, width = done+p.Progress*w, width+w
	}
	if width == 0 || done == 0 {
		return
	}
	if share := done / width; share < 1 {
		eta := ran * (1 - share) / share
		sd.ETASeconds = &eta
	}
}

// Skipped returns execution id's skipped items with ids above after,
// oldest first, at most limit (default 100, at most 1000).
func (e *Engine) Skipped(ctx context.Context, id, after int64, limit int) ([]SkipRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	out := []SkipRecord{}
	if err := e.db.NewSelect().Model(&out).
		Where("step_execution_id IN (SELECT step_execution_id FROM batch_step_execution WHERE job_execution_id = ?)", id).
		Where("id > ?", after).Order("id").Limit(int64(limit)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("load skipped items: %w", err)
	}
	return out, nil
}
