package retention

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what collections removed, by kind (deployment, blob, cache, alias, marker, handoff).
type Metrics struct {
	objects *prometheus.CounterVec
	bytes   *prometheus.CounterVec
	runs    *prometheus.CounterVec
}

// NewMetrics registers the collector's metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_gc_deleted_objects_total", Help: "Objects deleted by garbage collection, by kind.",
		}, []string{"kind"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_gc_deleted_bytes_total", Help: "Bytes deleted by garbage collection, by kind (a deployment counts the bytes its manifest names).",
		}, []string{"kind"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_gc_projects_total", Help: "Project collections, by result (ok, skipped, error).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []**prometheus.CounterVec{&m.objects, &m.bytes, &m.runs} {
			if err := reg.Register(*c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("register retention metrics: %w", err)
				}
				*c = are.ExistingCollector.(*prometheus.CounterVec) // registered again: count in the first set
			}
		}
	}
	return m, nil
}

func (m *Metrics) add(d Deletion, dry bool) {
	if m == nil || dry {
		return
	}
	m.objects.WithLabelValues(d.Kind).Inc()
	m.bytes.WithLabelValues(d.Kind).Add(float64(d.Bytes))
}

// Run counts one project's collection: its report, or the error that stopped it.
func (m *Metrics) Run(r *Report, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.runs.WithLabelValues("error").Inc()
	case r.Skipped != "":
		m.runs.WithLabelValues("skipped").Inc()
	default:
		m.runs.WithLabelValues("ok").Inc()
	}
}
