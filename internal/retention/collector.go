package retention

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// Collector is the mark-and-sweep over one storage. Its zero fields take defaults; Storage is required.
type Collector struct {
	Storage storage.Storage
	// Log receives one line per deletion, with its reason, and progress. Nil: slog.Default().
	Log *slog.Logger
	// DryRun plans and reports but writes and deletes nothing (no lease, no state).
	DryRun bool
	// Now is the clock; tests move it. Default time.Now.
	Now func() time.Time
	// Metrics, if set, counts what was collected.
	Metrics *Metrics
	// Parallel bounds concurrent manifest and alias reads. Default 16.
	Parallel int
	// Gone reports whether a project was deleted (or is being deleted) while it was collected. The collector
	// asks after writing its state and report, and deletes them again when it was, so that a project deletion
	// that listed the prefix before those writes leaves nothing behind (the App: the project row is gone or
	// marked deleting). Nil: gone when nothing but the collector's own gc/ objects remains under the prefix.
	Gone func(ctx context.Context, project string) (bool, error)
}

// Kinds of objects a report names.
const (
	KindDeployment = "deployment"
	KindBlob       = "blob"
	KindCache      = "cache"
	KindAlias      = "alias"
	KindMarker     = "marker"
	// KindHandoff is the record of a used sign-in hand-off token (protect.ClaimHandoff), kept
	// protect.HandoffRecordTTL.
	KindHandoff = "handoff"
)

// Deletion is one object the policy removes (or would, in a dry run), and why.
type Deletion struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Name   string `json:"name,omitempty"` // the deployment id or alias name
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

// Usage is what a project stores.
type Usage struct {
	Deployments int   `json:"deployments"`
	Blobs       int   `json:"blobs"`
	BlobBytes   int64 `json:"blobBytes"`
	Caches      int   `json:"caches"`
	CacheBytes  int64 `json:"cacheBytes"`
}

// Bytes is the project's total.
func (u Usage) Bytes() int64 { return u.BlobBytes + u.CacheBytes }

// Report is one project's collection.
type Report struct {
	Project string `json:"project"`
	DryRun  bool   `json:"dryRun"`
	// Skipped says why deployments and blobs were left alone this time (a publish in progress, an unreadable
	// manifest); caches and stale markers are still collected.
	Skipped string     `json:"skipped,omitempty"`
	Before  Usage      `json:"before"`
	Deleted []Deletion `json:"deleted"`
	// RetiredAliases and DeletedDeployments are what the App reports to GitHub and its database.
	RetiredAliases     []string `json:"retiredAliases"`
	DeletedDeployments []string `json:"deletedDeployments"`
	// Upcoming are the deployments the policy removes next, soonest first: previews in their grace period, and
	// production deployments outside the window waiting out the minimum age.
	Upcoming []Upcoming `json:"upcoming"`
	// DeletedObjects and DeletedBytes total Deleted (the stored report lists no blobs, only these totals).
	DeletedObjects int       `json:"deletedObjects"`
	DeletedBytes   int64     `json:"deletedBytes"`
	At             time.Time `json:"at"`
	Took           Duration  `json:"took"`
}

// Upcoming is a deployment the policy will remove at At unless an alias takes it back.
type Upcoming struct {
	Deployment string    `json:"deployment"`
	At         time.Time `json:"at"`
	Reason     string    `json:"reason"`
}

// ReportKey is where each real run leaves its Report, for the dashboard and for people reading the bucket.
func ReportKey(project string) string { return site.ProjectPrefix(project) + "gc/report.json" }

// ReportGet reads the last run's report of project (ENOTFOUND before the first).
func ReportGet(ctx context.Context, st storage.Storage, project string) (*Report, error) {
	data, err := readSmall(ctx, st, ReportKey(project))
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "read %s: %w", ReportKey(project), err)
	}
	return &r, nil
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Duration prints as "1.5s" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Bytes is what the report deletes, per kind.
func (r *Report) Bytes() (objects int, bytes int64) {
	for _, d := range r.Deleted {
		objects++
		bytes += d.Bytes
	}
	return objects, bytes
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Collector) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Projects lists the projects that have anything in storage, from one listing of projects/.
func (c *Collector) Projects(ctx context.Context) ([]string, error) {
	objs, err := c.Storage.List(ctx, "projects/")
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	var out []string
	for _, o := range objs {
		name, _, ok := strings.Cut(strings.TrimPrefix(o.Key, "projects/"), "/")
		if ok && site.ValidateProjectName(name) == nil && (len(out) == 0 || out[len(out)-1] != name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// DomainAliases reads the custom domains (domains/<host>.json, written by the App) and returns, per project,
// the aliases they serve: those are never retired. ok is false when domains cannot be listed (credentials
// scoped to one project); then no alias is retired at all.
func (c *Collector) DomainAliases(ctx context.Context) (map[string]map[string]bool, bool) {
	objs, err := c.Storage.List(ctx, "domains/")
	if err != nil {
		c.log().WarnContext(ctx, "custom domains cannot be listed, so no preview alias is retired this run", "err", err)
		return nil, false
	}
	out := map[string]map[string]bool{}
	for _, o := range objs {
		var d struct {
			Project string `json:"project"`
			Alias   string `json:"alias"`
		}
		data, err := readSmall(ctx, c.Storage, o.Key)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			continue
		}
		if err != nil {
			c.log().WarnContext(ctx, "a custom domain cannot be read, so no preview alias is retired this run", "key", o.Key, "err", err)
			return nil, false
		}
		if json.Unmarshal(data, &d) != nil {
			continue // not a domain the proxy would serve either
		}
		if d.Alias == "" {
			d.Alias = "production"
		}
		if out[d.Project] == nil {
			out[d.Project] = map[string]bool{}
		}
		out[d.Project][d.Alias] = true
	}
	return out, true
}

// state is what the collector remembers between runs, at projects/<p>/gc/state.json: when it first saw each
// preview deployment without an alias, so the grace period counts from the pull request's closing (or the
// alias's retirement), not from the deployment's birth.
type state struct {
	Unreferenced map[string]time.Time `json:"unreferencedSince"`
}

func stateKey(project string) string { return site.ProjectPrefix(project) + "gc/state.json" }

// deployment is one manifest as the collector sees it.
type deployment struct {
	id         string
	created    time.Time
	bytes      int64
	production bool // published to production, or from before manifests said (counted as production: kept longer)
	blobs      []string
}

// Project collects one project by pol, which must be complete (pol.Over(Defaults)). domains are the aliases
// custom domains serve in this project; domainsOK false retires no alias.
func (c *Collector) Project(ctx context.Context, project string, pol Policy, domains map[string]bool, domainsOK bool) (*Report, error) {
	if err := site.ValidateProjectName(project); err != nil {
		return nil, err
	}
	if err := pol.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	rep := &Report{Project: project, DryRun: c.DryRun, Deleted: []Deletion{}, RetiredAliases: []string{}, DeletedDeployments: []string{},
		Upcoming: []Upcoming{}, At: c.now().UTC()}
	log := c.log().With("project", project)
	if c.DryRun {
		log = log.With("dry_run", true)
	}
	l := &lease{c: c, project: project}
	if !c.DryRun {
		// The lease goes up BEFORE the writers' markers are listed: the handshake's order (site/writer.go).
		if err := l.take(ctx); err != nil {
			return nil, err
		}
		defer l.release(context.WithoutCancel(ctx))
	}
	sw := &sweeper{c: c, l: l, rep: rep, log: log, ctx: ctx}

	// 1. Writers in progress: a live one holds deployments and blobs; a dead one's marker goes.
	markers, err := c.Storage.List(ctx, site.WriterPrefix(project))
	if err != nil {
		return nil, fmt.Errorf("list publish markers: %w", err)
	}
	live := 0
	var stale []Deletion
	for _, m := range markers {
		if age := time.Since(m.ModTime); age > site.WriterMarkerTTL { // physical time: a safety rule, not policy
			stale = append(stale, Deletion{Kind: KindMarker, Key: m.Key, Bytes: m.Size,
				Reason: fmt.Sprintf("publish marker %s old: its publish died", age.Round(time.Minute))})
		} else {
			live++
		}
	}
	if err := sw.delete(stale); err != nil {
		return nil, err
	}
	if live > 0 {
		rep.Skipped = fmt.Sprintf("%d publish(es) in progress", live)
	}

	// 2. Caches: independent of deployments.
	caches, err := c.Storage.List(ctx, site.ProjectPrefix(project)+"cache/")
	if err != nil {
		return nil, fmt.Errorf("list caches: %w", err)
	}
	for _, o := range caches {
		rep.Before.Caches++
		rep.Before.CacheBytes += o.Size
	}
	if err := sw.delete(cachePlan(caches, pol, c.now())); err != nil {
		return nil, err
	}

	// Used hand-off tokens' records: only their age matters.
	handoffs, err := c.Storage.List(ctx, protect.HandoffsPrefix(project))
	if err != nil {
		return nil, fmt.Errorf("list hand-off records: %w", err)
	}
	var usedTokens []Deletion
	for _, o := range handoffs {
		if age := time.Since(o.ModTime); age > protect.HandoffRecordTTL { // physical time, like markers
			usedTokens = append(usedTokens, Deletion{Kind: KindHandoff, Key: o.Key, Bytes: o.Size,
				Reason: fmt.Sprintf("used sign-in token recorded %s ago; it expired long since", age.Round(time.Minute))})
		}
	}
	if err := sw.delete(usedTokens); err != nil {
		return nil, err
	}

	// Usage counts even when the sweep is skipped.
	blobs, err := c.Storage.List(ctx, site.ProjectPrefix(project)+"blobs/")
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	for _, o := range blobs {
		rep.Before.Blobs++
		rep.Before.BlobBytes += o.Size
	}
	if rep.Skipped != "" {
		deps, _ := c.Storage.List(ctx, site.ProjectPrefix(project)+"deployments/")
		rep.Before.Deployments = len(deps)
		log.InfoContext(ctx, "deployments and blobs left for the next run", "why", rep.Skipped)
		rep.Took = Duration(time.Since(start))
		return rep, nil
	}

	// 3. Mark: aliases, then every manifest (after the lease and the marker check, so a manifest written by a
	// publish that finished before the lease is seen here, and one that starts later waits for the lease).
	aliases, err := site.NewStore(c.Storage).AliasList(ctx, project)
	if err != nil {
		return nil, err
	}
	deps, unreadable, err := c.readDeployments(ctx, project)
	if err != nil {
		return nil, err
	}
	rep.Before.Deployments = len(deps) + len(unreadable)
	st, err := c.loadState(ctx, project)
	if err != nil {
		return nil, err
	}
	if err := l.keep(ctx); err != nil {
		return nil, err
	}

	now := c.now()
	targets := map[string]bool{}
	var retire []Deletion
	for _, a := range aliases {
		stale := pol.StaleAfterDays > 0 && a.Name != "production" && domainsOK && !domains[a.Name] &&
			now.Sub(a.UpdatedAt) > days(pol.StaleAfterDays)
		if stale {
			retire = append(retire, Deletion{Kind: KindAlias, Key: site.AliasKey(project, a.Name), Name: a.Name,
				Reason: fmt.Sprintf("preview alias not pushed to for %d days (last %s), pointing at %s", int(now.Sub(a.UpdatedAt).Hours()/24), a.UpdatedAt.Format(time.DateOnly), a.Deployment)})
			continue
		}
		targets[a.Deployment] = true
	}
	current := ""
	for _, a := range aliases {
		if a.Name == "production" {
			current = a.Deployment
		}
	}

	keep, drop, upcoming := plan(deps, targets, current, pol, now, st)
	rep.Upcoming = upcoming

	// Blobs: every blob a kept manifest names, or an unreadable one may name, stays.
	marked := map[string]bool{}
	for _, d := range keep {
		for _, b := range d.blobs {
			marked[b] = true
		}
	}
	var blobDrops []Deletion
	if len(unreadable) == 0 {
		prefix := site.ProjectPrefix(project) + "blobs/"
		for _, o := range blobs {
			sum := strings.TrimPrefix(o.Key, prefix)
			if marked[sum] {
				continue
			}
			if age := now.Sub(o.ModTime); age < pol.minAge() {
				continue // possibly a publisher without markers (an older ferry) still uploading
			}
			blobDrops = append(blobDrops, Deletion{Kind: KindBlob, Key: o.Key, Bytes: o.Size, Reason: "no kept deployment names it"})
		}
	} else {
		rep.Skipped = fmt.Sprintf("%d manifest(s) unreadable (%s): blobs kept", len(unreadable), unreadable[0])
		log.WarnContext(ctx, "blobs left alone: a manifest cannot be read, so what it names is unknown", "deployments", unreadable)
	}

	// 4. Sweep, in an order that is consistent wherever it stops: aliases, then manifests (a deployment is
	// gone once its manifest is), then the blobs no remaining manifest names.
	if err := sw.delete(retire); err != nil {
		return nil, err
	}
	for _, d := range retire {
		rep.RetiredAliases = append(rep.RetiredAliases, d.Name)
	}
	if err := sw.delete(drop); err != nil {
		return nil, err
	}
	for _, d := range drop {
		rep.DeletedDeployments = append(rep.DeletedDeployments, d.Name)
		delete(st.Unreferenced, d.Name)
	}
	if !c.DryRun {
		if err := c.saveState(ctx, project, st); err != nil {
			return nil, err
		}
	}
	if err := sw.delete(blobDrops); err != nil {
		return nil, err
	}
	rep.Took = Duration(time.Since(start))
	rep.DeletedObjects, rep.DeletedBytes = rep.Bytes()
	if !c.DryRun {
		saved := *rep
		saved.Deleted = slices.DeleteFunc(slices.Clone(rep.Deleted), func(d Deletion) bool { return d.Kind == KindBlob })
		data, err := json.Marshal(saved)
		if err == nil {
			err = putJSON(ctx, c.Storage, ReportKey(project), data)
		}
		if err != nil {
			return nil, fmt.Errorf("write collection report: %w", err)
		}
	}
	if !c.DryRun {
		if err := c.forgetIfGone(ctx, project, log); err != nil {
			return nil, err
		}
	}
	n, b := rep.Bytes()
	log.InfoContext(ctx, "project collected", "deleted_objects", n, "deleted_bytes", b, "kept_deployments", len(keep),
		"blobs", rep.Before.Blobs, "took", time.Since(start).Round(time.Millisecond))
	rep.Took = Duration(time.Since(start))
	return rep, nil
}

// plan splits deployments into kept and deleted, by the policy's rules in order: an alias target stays; the
// rollback window stays; anything younger than the minimum age stays; a production deployment beyond the
// window goes; a preview goes once it has been without an alias for the grace period. It updates st.
func plan(deps []deployment, targets map[string]bool, current string, pol Policy, now time.Time, st *state) (keep []deployment, drop []Deletion, upcoming []Upcoming) {
	defer func() {
		sort.Slice(upcoming, func(i, j int) bool { return upcoming[i].At.Before(upcoming[j].At) })
	}()
	// deps are sorted oldest first; ids sort by time.
	window := map[string]string{}
	var prod []deployment
	for _, d := range deps {
		if d.production {
			prod = append(prod, d)
		}
	}
	for i := len(prod) - 1; i >= 0 && i >= len(prod)-pol.RollbackWindow; i-- {
		window[prod[i].id] = fmt.Sprintf("among the %d newest production deployments", pol.RollbackWindow)
	}
	if cur := slices.IndexFunc(prod, func(d deployment) bool { return d.id == current }); cur >= 0 {
		for i := cur - 1; i >= 0 && i >= cur-pol.RollbackWindow; i-- {
			window[prod[i].id] = fmt.Sprintf("among the %d production deployments before the current one", pol.RollbackWindow)
		}
	}
	seen := map[string]bool{}
	for _, d := range deps {
		seen[d.id] = true
		switch {
		case targets[d.id]:
			delete(st.Unreferenced, d.id)
			keep = append(keep, d)
			continue
		case window[d.id] != "":
			keep = append(keep, d)
			continue
		}
		if d.production {
			if now.Sub(d.created) < pol.minAge() {
				keep = append(keep, d)
				upcoming = append(upcoming, Upcoming{Deployment: d.id, At: d.created.Add(pol.minAge()),
					Reason: fmt.Sprintf("production deployment outside the rollback window of %d, after the minimum age", pol.RollbackWindow)})
				continue
			}
			drop = append(drop, Deletion{Kind: KindDeployment, Key: "", Name: d.id, Bytes: d.bytes,
				Reason: fmt.Sprintf("production deployment outside the rollback window of %d", pol.RollbackWindow)})
			continue
		}
		since, ok := st.Unreferenced[d.id]
		if !ok {
			since = now
			st.Unreferenced[d.id] = now
		}
		if now.Sub(d.created) < pol.minAge() || now.Sub(since) < pol.grace() {
			keep = append(keep, d)
			at := since.Add(pol.grace())
			if m := d.created.Add(pol.minAge()); m.After(at) {
				at = m
			}
			upcoming = append(upcoming, Upcoming{Deployment: d.id, At: at,
				Reason: fmt.Sprintf("preview without an alias since %s (grace %d days)", since.Format(time.DateOnly), pol.PreviewGraceDays)})
			continue
		}
		drop = append(drop, Deletion{Kind: KindDeployment, Name: d.id, Bytes: d.bytes,
			Reason: fmt.Sprintf("preview without an alias since %s (grace %d days)", since.Format(time.DateOnly), pol.PreviewGraceDays)})
	}
	for id := range st.Unreferenced {
		if !seen[id] {
			delete(st.Unreferenced, id)
		}
	}
	return keep, drop, upcoming
}

// cachePlan evicts caches saved more than CacheMaxAgeDays ago, then the oldest until the rest fit CacheMaxMB.
func cachePlan(caches []storage.ObjectInfo, pol Policy, now time.Time) []Deletion {
	var out []Deletion
	var rest []storage.ObjectInfo
	var total int64
	for _, o := range caches {
		if !strings.HasSuffix(o.Key, ".tar.gz") {
			continue // a partial upload or someone else's file: not ours to judge
		}
		if age := now.Sub(o.ModTime); age > pol.cacheAge() {
			out = append(out, Deletion{Kind: KindCache, Key: o.Key, Bytes: o.Size,
				Reason: fmt.Sprintf("dependency cache saved %d days ago (limit %d)", int(age.Hours()/24), pol.CacheMaxAgeDays)})
			continue
		}
		rest = append(rest, o)
		total += o.Size
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].ModTime.Before(rest[j].ModTime) })
	limit := pol.CacheMaxMB << 20
	for _, o := range rest {
		if total <= limit {
			break
		}
		out = append(out, Deletion{Kind: KindCache, Key: o.Key, Bytes: o.Size,
			Reason: fmt.Sprintf("dependency caches over %d MB: oldest first", pol.CacheMaxMB)})
		total -= o.Size
	}
	return out
}

// readDeployments reads every manifest of the project, in parallel. A manifest that is missing by now was
// deleted meanwhile and is skipped; one that cannot be parsed is returned in unreadable (its blobs are unknown,
// so no blob is collected); an outage fails the run.
func (c *Collector) readDeployments(ctx context.Context, project string) ([]deployment, []string, error) {
	ss := site.NewStore(c.Storage)
	list, err := ss.DeploymentList(ctx, project)
	if err != nil {
		return nil, nil, err
	}
	out := make([]deployment, len(list))
	bad := make([]string, len(list))
	par := c.Parallel
	if par <= 0 {
		par = 16
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for i, info := range list {
		g.Go(func() error {
			m, err := ss.ManifestGet(gctx, project, info.ID)
			switch ferry.ErrorCode(err) {
			case "":
			case ferry.ENOTFOUND:
				return nil
			case ferry.EINTERNAL:
				bad[i] = info.ID
				return nil
			default:
				return err
			}
			d := deployment{id: info.ID, created: info.CreatedAt, production: m.Aliases == nil || slices.Contains(m.Aliases, "production")}
			seen := map[string]bool{}
			for _, f := range m.Files {
				if !seen[f.Blob] {
					seen[f.Blob] = true
					d.blobs = append(d.blobs, f.Blob)
					d.bytes += f.Size
				}
			}
			out[i] = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, fmt.Errorf("read manifests: %w", err)
	}
	deps := out[:0]
	for _, d := range out {
		if d.id != "" {
			deps = append(deps, d)
		}
	}
	var unreadable []string
	for _, id := range bad {
		if id != "" {
			unreadable = append(unreadable, id)
		}
	}
	return deps, unreadable, nil
}

func (c *Collector) loadState(ctx context.Context, project string) (*state, error) {
	st := &state{Unreferenced: map[string]time.Time{}}
	data, err := readSmall(ctx, c.Storage, stateKey(project))
	switch ferry.ErrorCode(err) {
	case "":
		if json.Unmarshal(data, st) != nil || st.Unreferenced == nil {
			st.Unreferenced = map[string]time.Time{} // a damaged state only restarts the grace periods
		}
	case ferry.ENOTFOUND:
	default:
		return nil, fmt.Errorf("read collector state: %w", err)
	}
	return st, nil
}

func (c *Collector) saveState(ctx context.Context, project string, st *state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode collector state: %w", err)
	}
	if err := putJSON(ctx, c.Storage, stateKey(project), data); err != nil {
		return fmt.Errorf("write collector state: %w", err)
	}
	return nil
}

// forgetIfGone deletes the state and report this run wrote when the project was deleted meanwhile: a
// deletion that listed the project's prefix before they were written would otherwise leave them behind. It is
// asked after both writes, so a deletion that starts later lists and removes them itself.
func (c *Collector) forgetIfGone(ctx context.Context, project string, log *slog.Logger) error {
	gone := c.Gone
	if gone == nil {
		gone = c.onlyGCLeft
	}
	g, err := gone(ctx, project)
	if err != nil {
		return fmt.Errorf("check that project %s still exists: %w", project, err)
	}
	if !g {
		return nil
	}
	if err := c.Storage.DeleteMany(ctx, []string{stateKey(project), ReportKey(project)}); err != nil {
		return fmt.Errorf("delete the collector's state of deleted project %s: %w", project, err)
	}
	log.InfoContext(ctx, "project deleted during its collection; collector state removed")
	return nil
}

// onlyGCLeft is the storage-only Gone: nothing but the collector's own objects (state, report, leases) is left
// under the project's prefix.
func (c *Collector) onlyGCLeft(ctx context.Context, project string) (bool, error) {
	objs, err := c.Storage.List(ctx, site.ProjectPrefix(project))
	if err != nil {
		return false, err
	}
	gc := site.ProjectPrefix(project) + "gc/"
	for _, o := range objs {
		if !strings.HasPrefix(o.Key, gc) {
			return false, nil
		}
	}
	return true, nil
}

// sweeper deletes lists of objects in batches, renewing the lease before each batch, logging each deletion.
type sweeper struct {
	c   *Collector
	l   *lease
	rep *Report
	log *slog.Logger
	ctx context.Context
}

// sweepBatch is how many keys go in one DeleteMany between lease checks: one S3 request.
const sweepBatch = 1000

func (s *sweeper) delete(ds []Deletion) error {
	for i := range ds {
		if ds[i].Kind == KindDeployment && ds[i].Key == "" {
			ds[i].Key = site.ManifestKey(s.rep.Project, ds[i].Name)
		}
	}
	for len(ds) > 0 {
		n := min(len(ds), sweepBatch)
		batch := ds[:n]
		ds = ds[n:]
		if !s.c.DryRun {
			if err := s.l.keep(s.ctx); err != nil {
				return err
			}
			keys := make([]string, len(batch))
			for i, d := range batch {
				keys[i] = d.Key
			}
			if err := s.c.Storage.DeleteMany(s.ctx, keys); err != nil {
				return fmt.Errorf("delete %d objects: %w", len(keys), err)
			}
		}
		for _, d := range batch {
			s.log.InfoContext(s.ctx, "deleted", "kind", d.Kind, "key", d.Key, "bytes", d.Bytes, "reason", d.Reason)
			s.c.Metrics.add(d, s.c.DryRun)
		}
		s.rep.Deleted = append(s.rep.Deleted, batch...)
	}
	return nil
}

// lease is the collector's side of the handshake with writers (site/writer.go). A goroutine renews it every
// third of its term; deletes are sent only while the last renewal is fresh, so a collector that stalls (or
// loses storage) stops deleting before any writer stops waiting for it.
type lease struct {
	c       *Collector
	project string
	key     string
	mu      sync.Mutex
	written time.Time // when the current term was written (local monotonic clock)
	stop    context.CancelFunc
	done    chan struct{}
}

// leaseSafety is how long before the term ends the collector stops sending deletes.
const leaseSafety = 30 * time.Second

func (l *lease) take(ctx context.Context) error {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.key = site.GCLeasePrefix(l.project) + hex.EncodeToString(b[:]) + ".json"
	if err := l.write(ctx); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop, l.done = stop, make(chan struct{})
	go func() {
		defer close(l.done)
		t := time.NewTicker(site.GCLeaseTerm / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				_ = l.write(rctx) // a failed renewal shows in keep as an old term
			}
		}
	}()
	return nil
}

func (l *lease) write(ctx context.Context) error {
	t := time.Now()
	data, err := json.Marshal(site.GCLease{Run: l.key, ExpiresAt: t.Add(site.GCLeaseTerm).UTC()})
	if err != nil {
		return fmt.Errorf("encode lease: %w", err)
	}
	if err := putJSON(ctx, l.c.Storage, l.key, data); err != nil {
		return fmt.Errorf("take collection lease on %s: %w", l.project, err)
	}
	l.mu.Lock()
	l.written = t
	l.mu.Unlock()
	return nil
}

// keep refuses to go on when the lease's current term is about to end: a writer may stop waiting then.
func (l *lease) keep(ctx context.Context) error {
	if l.key == "" {
		return nil
	}
	l.mu.Lock()
	age := time.Since(l.written)
	l.mu.Unlock()
	if age > site.GCLeaseTerm-leaseSafety {
		return ferry.Errorf(ferry.EUNAVAILABLE, "collection lease on %s not renewed for %s; stopping before publishes resume (run again)", l.project, age.Round(time.Second))
	}
	return ctx.Err()
}

func (l *lease) release(ctx context.Context) {
	if l.key == "" {
		return
	}
	l.stop()
	<-l.done
	_ = l.c.Storage.Delete(ctx, l.key) // a lease left behind lapses by itself
}

func readSmall(ctx context.Context, st storage.Storage, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "read %s: %w", key, err)
	}
	return data, nil
}

func putJSON(ctx context.Context, st storage.Storage, key string, data []byte) error {
	sum := sha256.Sum256(data)
	return st.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{SHA256: hex.EncodeToString(sum[:]), ContentType: "application/json"})
}
