// Package proxy is `ferry proxy`, the site server: it maps each request's Host to a deployment
// (docs/architecture.md, "Host names and ids") and serves the deployment's files with its _redirects, _headers, clean-URL, SPA and 404 rules.
//
// The request path is built for steady-state speed: manifests (with their compiled rules), routes per URL path,
// and blobs (with their compressed variants) are resolved once and cached, so that a cache hit neither
// allocates, nor takes a lock across I/O, nor evaluates user rules. Large blobs are cached as files and sent
// with sendfile.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/singleflight"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// Config configures a Proxy. Zero values take the defaults stated on each field.
type Config struct {
	// Storage holds the deployments (docs/architecture.md, "Storage"). Required.
	Storage storage.Storage
	// Domain is D in <project>.D and <name>--<project>.D, for example "localhost" or "preview.example.com".
	// Required.
	Domain string
	// CacheBytes bounds the memory that cached blobs take, compressed variants included. Default 256 MiB.
	CacheBytes int64
	// CacheDir holds blobs larger than DiskThreshold, so that they can be sent with sendfile. Default: a new
	// temporary folder that Close removes.
	CacheDir string
	// CacheDiskBytes bounds the bytes kept in CacheDir. Default 4 GiB.
	CacheDiskBytes int64
	// DiskThreshold is the size above which a blob (or a compressed variant) is cached on disk rather than in
	// memory. Default 64 KiB.
	DiskThreshold int64
	// AliasTTL is how long an alias is trusted before it is read again; a promote or rollback shows within it.
	// Default 2s.
	AliasTTL time.Duration
	// SignalInterval is how often the alias change signal (docs/architecture.md, "Alias change signal") is read:
	// one small GET for the whole storage, after which a changed signal makes every cached alias stale, so a
	// promote or rollback shows within about this interval. Negative turns it off (changes then show within
	// AliasTTL). Default 250ms.
	SignalInterval time.Duration
	// StorageTimeout bounds one storage read (an alias, a manifest or a blob). Default 30s.
	StorageTimeout time.Duration
	// Log receives structured logs. Default slog.Default().
	Log *slog.Logger
	// ProxyOrigins are the origins ("https://api.example.com") that sites' proxy rules
	// (`/api/* https://api.example.com/:splat 200`) may fetch from. A rule naming any other origin is answered
	// with 502 and a log line. Default: none.
	ProxyOrigins []string
	// ProxyTimeout bounds one proxied request, from connecting to the last byte of the answer. Default 30s.
	ProxyTimeout time.Duration
	// ProxyMaxResponseBytes caps a proxied answer's body; a larger one is a 502. Default 10 MiB.
	ProxyMaxResponseBytes int
	// ProxyMaxRequestBytes caps a request body (only proxy rules take one). Default 1 MiB.
	ProxyMaxRequestBytes int
	// ProxyNetPolicy decides which addresses proxy rules may connect to. Default (the zero value): public
	// addresses only; loopback, private and link-local ones are refused before connecting.
	ProxyNetPolicy netpolicy.Policy
	// HandoffKey checks the app's sign-in hand-off tokens (--protection-key-file, the same file as ferry app's).
	// Default nil: members of a protected project cannot sign in through this proxy.
	HandoffKey []byte
	// SignInURL is the dashboard's public URL ("https://ferry.example.com") that visitors of members-only sites
	// are sent to. Default "": no sign-in.
	SignInURL string
	// SecureCookies marks access cookies Secure (and names them __Host-ferry_access) on plain-HTTP requests too,
	// for a proxy behind a TLS-terminating load balancer. HTTPS requests always get them. Default false.
	SecureCookies bool
	// MemberTTL is how long a member's access cookie lasts before the dashboard checks their repository access
	// again (which also ends access after they log out or lose access on GitHub). Default 10m.
	MemberTTL time.Duration
	// AccessTTL caps a password or share-link access cookie. Default 24h.
	AccessTTL time.Duration
	// Registry receives the proxy's metrics and is what /metrics serves. Default: a new registry with the Go and
	// process collectors.
	Registry *prometheus.Registry
}

// Proxy serves sites. Its Handle method is the fasthttp handler; Close releases the disk cache.
type Proxy struct {
	cfg     Config
	store   *site.Store
	log     *slog.Logger
	domain  string
	base    context.Context
	cancel  context.CancelFunc
	ownDir  bool
	start   time.Time
	metrics *metrics
	ops     fasthttp.RequestHandler

	hostsMu sync.RWMutex
	hosts   map[string]*hostEntry

	depsMu sync.Mutex
	deps   map[string]*deployment

	// gen counts the alias change signal's changes; a resolution read under an older gen is stale.
	gen     atomic.Int64
	protsMu sync.Mutex
	prots   map[string]*protEntry
	guesses guesses
	// handoffs remembers the hand-off tokens this process honoured; storage (protect.ClaimHandoff) is what
	// stops a replay at another proxy.
	handoffs usedHandoffs
	// cond is cfg.Storage's conditional writes, which claiming hand-off tokens needs (nil without HandoffKey).
	cond storage.Conditional

	flight   singleflight.Group
	blobs    *blobCache
	upstream *upstream
}

// Limits on caches that are not byte-bounded. They only stop hostile traffic from growing memory without
// bound; legitimate traffic stays far below them.
const (
	maxHosts       = 16384
	maxDeployments = 4096
	maxRoutes      = 8192
	maxPathLen     = 2048
)

// New checks cfg, fills its defaults and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Storage == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "proxy: no storage; pass --storage file:///path or s3://bucket/prefix")
	}
	cfg.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(cfg.Domain)), ".")
	if cfg.Domain == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "proxy: no domain; pass --domain, for example --domain localhost")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 256 << 20
	}
	if cfg.CacheDiskBytes <= 0 {
		cfg.CacheDiskBytes = 4 << 30
	}
	if cfg.DiskThreshold <= 0 {
		cfg.DiskThreshold = 64 << 10
	}
	if cfg.AliasTTL <= 0 {
		cfg.AliasTTL = 2 * time.Second
	}
	if cfg.SignalInterval == 0 {
		cfg.SignalInterval = 250 * time.Millisecond
	}
	if cfg.StorageTimeout <= 0 {
		cfg.StorageTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ProxyTimeout <= 0 {
		cfg.ProxyTimeout = 30 * time.Second
	}
	if cfg.ProxyMaxResponseBytes <= 0 {
		cfg.ProxyMaxResponseBytes = 10 << 20
	}
	if cfg.ProxyMaxRequestBytes <= 0 {
		cfg.ProxyMaxRequestBytes = 1 << 20
	}
	if cfg.MemberTTL <= 0 {
		cfg.MemberTTL = 10 * time.Minute
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 24 * time.Hour
	}
	cfg.SignInURL = strings.TrimSuffix(cfg.SignInURL, "/")
	cond, _ := cfg.Storage.(storage.Conditional)
	if cfg.HandoffKey != nil && cond == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "proxy: members' sign-in (--protection-key-file) needs a storage with conditional writes, to use each hand-off once; %T has none", cfg.Storage)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	up, err := newUpstream(&cfg, cfg.Registry)
	if err != nil {
		return nil, err
	}
	ownDir := false
	if cfg.CacheDir == "" {
		dir, err := os.MkdirTemp("", "ferry-proxy-cache-")
		if err != nil {
			return nil, ferry.Errorf(ferry.EUNAVAILABLE, "create cache folder: %w; pass --cache-dir", err)
		}
		cfg.CacheDir, ownDir = dir, true
	} else if err := prepareCacheDir(cfg.CacheDir); err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg:    cfg,
		store:  site.NewStore(cfg.Storage),
		log:    cfg.Log,
		domain: cfg.Domain,
		base:   base,
		cancel: cancel,
		ownDir: ownDir,
		start:  time.Now(),
		hosts:  map[string]*hostEntry{},
		deps:   map[string]*deployment{},
		prots:  map[string]*protEntry{},
		cond:   cond,

		upstream: up,
	}
	p.metrics = newMetrics()
	p.blobs = newBlobCache(cfg.CacheBytes, cfg.CacheDiskBytes, cfg.DiskThreshold, cfg.CacheDir, p.metrics)
	p.metrics.register(cfg.Registry, p.blobs)
	if cfg.SignalInterval > 0 {
		go p.watchSignal(base)
	}
	p.ops = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	return p, nil
}

// prepareCacheDir creates dir and removes blobs that a previous run left behind: they are not indexed, so they
// would only take space.
func prepareCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ferry.Errorf(ferry.EINVALID, "create cache folder %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "read cache folder %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), blobFilePrefix) {
			_ = os.Remove(dir + string(os.PathSeparator) + e.Name())
		}
	}
	return nil
}

// Close stops background work and removes the disk cache (all of CacheDir when New created it).
func (p *Proxy) Close() error {
	p.cancel()
	err := p.blobs.close()
	if p.ownDir {
		err = errors.Join(err, os.RemoveAll(p.cfg.CacheDir))
	}
	if err != nil {
		return fmt.Errorf("close proxy cache: %w", err)
	}
	return nil
}

// now is monotonic nanoseconds since New; cheaper to compare than time.Time and immune to clock steps.
func (p *Proxy) now() int64 { return int64(time.Since(p.start)) }
