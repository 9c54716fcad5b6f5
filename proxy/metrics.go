package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are resolved to plain counters up front, so that recording one on the request path is an atomic add.
type metrics struct {
	requests      [6]prometheus.Counter // by status class: index 1..5 = 1xx..5xx, 0 = other
	blobHits      prometheus.Counter
	blobMisses    prometheus.Counter
	blobEvictions prometheus.Counter
	storageErrors prometheus.Counter
	signalReads   prometheus.Counter
	signalErrors  prometheus.Counter
	signalChanges prometheus.Counter
	collectors    []prometheus.Collector
}

func newMetrics() *metrics {
	req := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_proxy_requests_total", Help: "Requests answered, by status class.",
	}, []string{"code"})
	m := &metrics{
		blobHits:      prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_blob_cache_hits_total", Help: "Files served from the blob cache."}),
		blobMisses:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_blob_cache_misses_total", Help: "Files fetched from storage."}),
		blobEvictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_blob_cache_evictions_total", Help: "Blobs evicted to stay within the cache budgets."}),
		storageErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_storage_errors_total", Help: "Alias or manifest reads that failed for a reason other than not found."}),
		signalReads:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_signal_reads_total", Help: "Reads of the alias change signal (one GET each)."}),
		signalErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_signal_errors_total", Help: "Reads of the alias change signal that failed; aliases then fall back to their TTL."}),
		signalChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_proxy_signal_changes_total", Help: "Changes of the alias change signal seen, each dropping the cached aliases."}),
	}
	for i, class := range []string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		m.requests[i] = req.WithLabelValues(class)
	}
	m.collectors = []prometheus.Collector{req, m.blobHits, m.blobMisses, m.blobEvictions, m.storageErrors, m.signalReads, m.signalErrors, m.signalChanges}
	return m
}

func (m *metrics) register(reg *prometheus.Registry, c *blobCache) {
	reg.MustRegister(m.collectors...)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_proxy_blob_cache_memory_bytes", Help: "Bytes of blobs cached in memory (with compressed variants)."},
			func() float64 { mem, _ := c.usage(); return float64(mem) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_proxy_blob_cache_disk_bytes", Help: "Bytes of blobs cached in the cache folder."},
			func() float64 { _, disk := c.usage(); return float64(disk) }),
	)
}

func (m *metrics) observe(status int) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.requests[class].Inc()
}
