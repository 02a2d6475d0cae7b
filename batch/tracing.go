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
//
// The tracer is looked up at each use, so a process (or a test) that sets
// its tracer provider later still gets its spans.
func tracer() trace.Tracer {
	return otel.GetTracerProvider().Tracer("github.com/passbatch/passbatch/batch")
}

// traceParent is ctx's W3C traceparent, or nil without a sampled span.
func traceParent(ctx context.Context) *string {
	if v := traceHeaders(ctx)["traceparent"]; v != "" {
		return &v
	}
	return nil
}

// joinTrace continues the trace tc (an execution's traceparent) unless ctx
// is in that trace already: the reconciler's re-drives (whose context holds
// at most a span of their own transaction) join the execution's trace
// instead of starting one.
func joinTrace(ctx context.Context, tc *string) context.Context {
	if tc == nil {
		return ctx
	}
	joined := otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier{"traceparent": *tc})
	want := trace.SpanContextFromContext(joined)
	if !want.IsValid() || trace.SpanContextFromContext(ctx).TraceID() == want.TraceID() {
		return ctx
	}
	return joined
}

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
		ctx, span := tracer().Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer),
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
