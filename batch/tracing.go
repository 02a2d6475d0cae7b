package batch

import (
	"context"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Traces: the engine uses the global OpenTelemetry tracer and propagator
// (no-ops until a process sets them up, see internal/tracing). A launch
// starts a span; every task carries the trace context of the span that
// enqueued it in its asynq headers, and its handler continues it, so an
// execution's job, step, partition and chunk spans — on whatever workers
// ran them — form one trace, with the SQL under them.
var tracer = otel.Tracer("github.com/passbatch/passbatch/batch")

// traceHeaders are the headers that carry ctx's trace to a task.
func traceHeaders(ctx context.Context) map[string]string {
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

// traced runs h in a span named name that continues the trace the task
// carries.
func traced(name string, h asynq.HandlerFunc) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		ctx = otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(t.Headers()))
		id, _ := asynq.GetTaskID(ctx)
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(attribute.String("asynq.task_id", id), attribute.String("asynq.task_type", t.Type())))
		defer span.End()
		err := h(ctx, t)
		endSpan(span, err)
		return err
	}
}

// endSpan records err on span.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
