package jobs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferryhq/ferry/internal/retention"
)

// metrics are the workers' Prometheus series.
type metrics struct {
	// buildSeconds times builds by how they ended: ready, failed (the user's), error (infrastructure), canceled.
	buildSeconds *prometheus.HistogramVec
	// failures counts failed build attempts by kind: user or infrastructure.
	failures *prometheus.CounterVec
	// jobs counts finished jobs by kind and outcome: ok, failed, retry, discarded, canceled, skipped.
	jobs *prometheus.CounterVec
	// retention counts what the retention job collected (internal/retention).
	retention *retention.Metrics
	// redeliveries counts what the webhook redelivery job did, by outcome: requested, failed, gave_up,
	// list_failed.
	redeliveries *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		buildSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_build_duration_seconds",
			Help:    "Build durations (clone to publish) by outcome: ready, failed, error, canceled.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200},
		}, []string{"outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_build_failures_total",
			Help: "Failed build attempts by kind: user (final) or infrastructure (retried).",
		}, []string{"kind"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_jobs_total",
			Help: "Finished River jobs by kind and outcome.",
		}, []string{"kind", "outcome"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_webhook_redeliveries_total",
			Help: "Missed GitHub webhook deliveries by what the redelivery job did: requested, failed, gave_up (failed every attempt), list_failed.",
		}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.buildSeconds, m.failures, m.jobs, m.redeliveries} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue // Register called again on the same registry: the first set keeps counting
			}
			return nil, fmt.Errorf("register job metrics: %w", err)
		}
	}
	var err error
	if m.retention, err = retention.NewMetrics(reg); err != nil {
		return nil, err
	}
	return m, nil
}
