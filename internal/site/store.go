package site

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
	"github.com/ferryhq/ferry/internal/storage"
)

// Store is the site store over one Storage: publishing, manifests and aliases.
type Store struct {
	Storage storage.Storage
	// Log receives what the store does not return: a failed write of the alias change signal. Default
	// slog.Default().
	Log *slog.Logger

	// signalRefused is set once a write of the alias change signal was refused for want of permission
	// (credentials scoped to one project, such as the Action's), so that such a writer logs it once and stops
	// trying.
	signalRefused atomic.Bool
}

// NewStore returns a site store over st.
func NewStore(st storage.Storage) *Store { return &Store{Storage: st} }

// maxManifestBytes bounds what ManifestGet reads: 20,000 files take about 3 MB, so this only stops garbage.
const maxManifestBytes = 64 << 20

// maxAliasBytes bounds what AliasGet reads.
const maxAliasBytes = 64 << 10

// ManifestGet reads a deployment's manifest (ENOTFOUND if it does not exist). It refuses a manifest of an
// unknown version, or one that names another project or deployment than its key (a copied or corrupt object).
func (s *Store) ManifestGet(ctx context.Context, project, deployment string) (*Manifest, error) {
	if err := ValidateProjectName(project); err != nil {
		return nil, err
	}
	if !IsDeploymentID(deployment) {
		return nil, ferry.Errorf(ferry.EINVALID, "%q is not a deployment id (they look like dpl-0123456789abcdef)", deployment)
	}
	key := ManifestKey(project, deployment)
	data, err := s.read(ctx, key, maxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("get manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get manifest %s: %w", key, err)
	}
	if m.Version != ManifestVersion {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get manifest %s: format version %d, this ferry reads version %d; upgrade ferry", key, m.Version, ManifestVersion)
	}
	if m.Project != project || m.Deployment != deployment {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get manifest %s: it describes %s/%s", key, m.Project, m.Deployment)
	}
	return &m, nil
}

// AliasGet reads an alias (ENOTFOUND if it does not exist).
func (s *Store) AliasGet(ctx context.Context, project, alias string) (*Alias, error) {
	if err := validateProjectAlias(project, alias); err != nil {
		return nil, err
	}
	key := AliasKey(project, alias)
	data, err := s.read(ctx, key, maxAliasBytes)
	if err != nil {
		return nil, fmt.Errorf("get alias: %w", err)
	}
	var a Alias
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get alias %s: %w", key, err)
	}
	if !IsDeploymentID(a.Deployment) {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get alias %s: %q is not a deployment id", key, a.Deployment)
	}
	return &a, nil
}

// AliasSet points alias at deployment: one small object write, so promote and rollback are instant. It
// refuses a deployment whose manifest does not exist, so an alias never leads to nothing.
func (s *Store) AliasSet(ctx context.Context, project, alias, deployment string) error {
	if err := validateProjectAlias(project, alias); err != nil {
		return err
	}
	if !IsDeploymentID(deployment) {
		return ferry.Errorf(ferry.EINVALID, "%q is not a deployment id (they look like dpl-0123456789abcdef)", deployment)
	}
	// Held across the check and the write, so that a collector cannot delete the manifest in between.
	wr, err := s.writerBegin(ctx, project, "alias", deployment, nil)
	if err != nil {
		return fmt.Errorf("set alias %s: %w", alias, err)
	}
	defer wr.end(context.WithoutCancel(ctx))
	if _, err := s.Storage.Stat(ctx, ManifestKey(project, deployment)); err != nil {
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			return ferry.Errorf(ferry.ENOTFOUND, "set alias %s: project %s has no deployment %s; publish it first", alias, project, deployment)
		}
		return fmt.Errorf("set alias %s: %w", alias, err)
	}
	if err := s.aliasPut(ctx, project, alias, deployment); err != nil {
		return err
	}
	// The signal moves nothing a collector reads, so it goes out after the writer's marker: a marker held
	// longer than the write needs keeps the collector away from the project (writer.go).
	wr.end(context.WithoutCancel(ctx))
	s.signal(ctx, project, alias)
	return nil
}

// aliasPut writes an alias object; the caller sends the alias change signal once its writer has ended.
func (s *Store) aliasPut(ctx context.Context, project, alias, deployment string) error {
	data, err := json.Marshal(Alias{Deployment: deployment, UpdatedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("encode alias: %w", err)
	}
	if err := s.putBytes(ctx, AliasKey(project, alias), data); err != nil {
		return fmt.Errorf("set alias %s: %w", alias, err)
	}
	return nil
}

// AliasDelete removes an alias, for example when its pull request closes. A missing alias is not an error,
// so cleanup can be retried. The deployments it pointed at stay reachable by id.
func (s *Store) AliasDelete(ctx context.Context, project, alias string) error {
	if err := validateProjectAlias(project, alias); err != nil {
		return err
	}
	if err := s.Storage.Delete(ctx, AliasKey(project, alias)); err != nil {
		return fmt.Errorf("delete alias %s: %w", alias, err)
	}
	s.signal(ctx, project, alias)
	return nil
}

// NamedAlias is one entry of AliasList.
type NamedAlias struct {
	Name string `json:"name"`
	Alias
}

// AliasList returns a project's aliases sorted by name. Objects under aliases/ whose names are not valid
// aliases are ignored (nothing Ferry writes).
func (s *Store) AliasList(ctx context.Context, project string) ([]NamedAlias, error) {
	if err := ValidateProjectName(project); err != nil {
		return nil, err
	}
	prefix := ProjectPrefix(project) + "aliases/"
	objs, err := s.Storage.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	var names []string
	for _, o := range objs {
		name, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), ".json")
		if ok && ValidateAlias(project, name) == nil {
			names = append(names, name)
		}
	}
	out := make([]NamedAlias, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, name := range names {
		g.Go(func() error {
			a, err := s.AliasGet(gctx, project, name)
			if err != nil {
				return err
			}
			out[i] = NamedAlias{Name: name, Alias: *a}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list aliases: %w", err)
	}
	// An alias deleted between List and Get leaves a hole; drop it.
	kept := out[:0]
	for _, a := range out {
		if a.Name != "" {
			kept = append(kept, a)
		}
	}
	return kept, nil
}

// DeploymentInfo is one entry of DeploymentList.
type DeploymentInfo struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

// DeploymentList returns a project's deployments, oldest first, from one listing: ids carry their creation
// time, so no manifest is read.
func (s *Store) DeploymentList(ctx context.Context, project string) ([]DeploymentInfo, error) {
	if err := ValidateProjectName(project); err != nil {
		return nil, err
	}
	prefix := ProjectPrefix(project) + "deployments/"
	objs, err := s.Storage.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list deployments: %w", err)
	}
	var out []DeploymentInfo
	for _, o := range objs {
		id, _ := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), ".json")
		if at, ok := DeploymentTime(id); ok {
			out = append(out, DeploymentInfo{ID: id, CreatedAt: at})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func validateProjectAlias(project, alias string) error {
	if err := ValidateProjectName(project); err != nil {
		return err
	}
	return ValidateAlias(project, alias)
}

// read returns the object at key, refusing objects over limit bytes.
func (s *Store) read(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := s.Storage.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "read %s: %w", key, err)
	}
	if int64(len(data)) > limit {
		return nil, ferry.Errorf(ferry.EINTERNAL, "read %s: larger than %d bytes", key, limit)
	}
	return data, nil
}

// putBytes writes a small JSON object with its checksum.
func (s *Store) putBytes(ctx context.Context, key string, data []byte) error {
	sum := sha256.Sum256(data)
	return s.Storage.Put(ctx, key, bytes.NewReader(data), int64(len(data)), storage.PutOptions{
		SHA256:      hex.EncodeToString(sum[:]),
		ContentType: "application/json",
	})
}

// PublishParams describes one publish. Only Project and Dir are required.
type PublishParams struct {
	// Project is the DNS-safe project name that owns the deployment.
	Project string
	// Dir is the output folder to publish. It is untrusted input.
	Dir string
	// DeploymentID is used when the caller has already assigned one (the app does, with NewDeploymentID);
	// otherwise a new id is made. Publishing the same files again under an existing id is a no-op (so a retried
	// job succeeds); publishing different files under it is ECONFLICT, because manifests are immutable.
	DeploymentID string
	// Aliases are pointed at the new deployment after its manifest is written.
	Aliases []string
	// Settings are the serving settings from the repository's ferry.json, if any (nil: defaults). A build that
	// detected the framework fills in what the user left unset: SPA true for a framework known to be a
	// single-page app, false for one known to be multi-page; left nil, the output's files decide
	// (siteconfig.Resolve).
	Settings *siteconfig.File
	// Domain, if set, fills PublishResult.URLs ("localhost:8081", "example.com", "https://example.com").
	Domain string
	// Meta is copied into the manifest (commit, ref, ...).
	Meta map[string]string
	// Log receives progress lines; nil discards them.
	Log *slog.Logger
	// Limits bound what an untrusted folder may hold; zero fields take the defaults.
	Limits Limits
	// HashCache names a file that remembers each file's hash between publishes of the same folder on this
	// machine, so that an unchanged file is not read again (see hashcache.go for when a remembered hash is
	// trusted). "auto" keeps it under the user's cache folder (HashCachePath); "" (the default) hashes every
	// file. Worth it only where the same folder is published again: `ferry publish`, not a fresh build.
	HashCache string
}

// Limits bound a published folder, so that a runaway build cannot fill the bucket or the proxy's cache.
type Limits struct {
	// MaxFiles is the most files one deployment may have. Default 20,000.
	MaxFiles int
	// MaxFileBytes is the largest file. Default 25 MiB.
	MaxFileBytes int64
	// MaxTotalBytes is the most bytes all files together may have. Default 1 GiB.
	MaxTotalBytes int64
}

// DefaultLimits are the limits that zero fields of Limits take.
var DefaultLimits = Limits{MaxFiles: 20_000, MaxFileBytes: 25 << 20, MaxTotalBytes: 1 << 30}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultLimits.MaxTotalBytes
	}
	return l
}

// PublishResult is what a publish did. Its JSON form is the `ferry publish --json` output contract.
type PublishResult struct {
	Project    string   `json:"project"`
	Deployment string   `json:"deployment"`
	URLs       []string `json:"urls"`
	Uploaded   int      `json:"uploaded"`
	Skipped    int      `json:"skipped"`
	Files      int      `json:"files"`
	Bytes      int64    `json:"bytes"`
}

// uploadParallelism bounds concurrent blob uploads: enough to hide S3 latency, few enough for small machines.
const uploadParallelism = 16

// Publish hashes Dir, uploads the missing blobs in parallel with their checksums, writes the manifest last, and
// then points the aliases at it.
func (s *Store) Publish(ctx context.Context, p PublishParams) (*PublishResult, error) {
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Names become storage keys and host labels: check them before anything touches storage.
	if err := ValidateProjectName(p.Project); err != nil {
		return nil, err
	}
	for _, a := range p.Aliases {
		if err := ValidateAlias(p.Project, a); err != nil {
			return nil, err
		}
	}
	id := p.DeploymentID
	if id == "" {
		id = NewDeploymentID()
	} else if !IsDeploymentID(id) {
		return nil, ferry.Errorf(ferry.EINVALID, "deployment id %q does not have the form dpl-0123456789abcdef; leave it empty to get a new one", id)
	}

	// Announce the publish to garbage collectors before anything is listed: a blob seen in the listing below is
	// then kept until this publish's manifest names it (writer.go).
	wr, err := s.writerBegin(ctx, p.Project, "publish", id, log)
	if err != nil {
		return nil, err
	}
	defer wr.end(context.WithoutCancel(ctx))

	// Listing the stored blobs needs no hashes, so it overlaps the hashing: a republish costs about the larger
	// of the two rather than their sum.
	listCtx, cancelList := context.WithCancel(ctx)
	defer cancelList()
	listed := make(chan blobListing, 1)
	go func() { listed <- s.blobList(listCtx, p.Project) }()

	started := time.Now()
	site, err := scanDir(ctx, p.Dir, p.Limits.withDefaults(), p.HashCache)
	if err != nil {
		return nil, err
	}
	if site.cacheErr != nil {
		log.Warn("hash cache not saved; the next publish hashes every file again", "cache", p.HashCache, "err", site.cacheErr)
	}
	log.Info("files hashed", "files", len(site.files), "bytes", site.total, "unchanged", site.cacheHits, "took", time.Since(started).Round(time.Millisecond))

	serving, err := site.serving(p.Settings)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Version:    ManifestVersion,
		Project:    p.Project,
		Deployment: id,
		CreatedAt:  time.Now().UTC(),
		Files:      make(map[string]File, len(site.files)),
		Config:     serving,
		Meta:       p.Meta,
		Aliases:    append([]string{}, p.Aliases...),
	}
	blobs := map[string]*localFile{} // one file per distinct content
	for i := range site.files {
		f := &site.files[i]
		m.Files[f.urlPath] = File{Blob: f.sum, Size: f.size, ContentType: f.contentType}
		if _, ok := blobs[f.sum]; !ok {
			blobs[f.sum] = f
		}
	}

	uploaded, skipped, err := s.uploadMissing(ctx, p.Project, blobs, <-listed, log)
	if err != nil {
		return nil, err
	}
	if err := wr.checkFresh(); err != nil {
		return nil, err
	}
	written := time.Now()
	if err := s.manifestPut(ctx, m, p.DeploymentID != ""); err != nil {
		return nil, err
	}
	log.Info("manifest written", "deployment", id, "key", ManifestKey(p.Project, id), "took", time.Since(written).Round(time.Millisecond))
	for _, a := range p.Aliases {
		if err := s.aliasPut(ctx, p.Project, a, id); err != nil {
			return nil, err
		}
		log.Info("alias set", "alias", a, "deployment", id)
	}
	if len(p.Aliases) > 0 {
		wr.end(context.WithoutCancel(ctx)) // as in AliasSet: the signal needs no marker
		for _, a := range p.Aliases {
			s.signal(ctx, p.Project, a)
		}
	}

	res := &PublishResult{
		Project:    p.Project,
		Deployment: id,
		URLs:       []string{},
		Uploaded:   uploaded,
		Skipped:    skipped,
		Files:      len(site.files),
		Bytes:      site.total,
	}
	if p.Domain != "" {
		res.URLs = append(res.URLs, DeploymentURL(p.Domain, p.Project, id))
		for _, a := range p.Aliases {
			res.URLs = append(res.URLs, DeploymentURL(p.Domain, p.Project, a))
		}
	}
	return res, nil
}

// blobListing is the set of a project's stored blobs (name to size), or why it could not be listed.
type blobListing struct {
	have map[string]int64
	took time.Duration
	err  error
}

// blobList lists the project's blobs once, so that a publish asks storage about each blob zero times.
func (s *Store) blobList(ctx context.Context, project string) blobListing {
	start := time.Now()
	prefix := ProjectPrefix(project) + "blobs/"
	objs, err := s.Storage.List(ctx, prefix)
	if err != nil {
		return blobListing{err: fmt.Errorf("list blobs: %w", err)}
	}
	have := make(map[string]int64, len(objs))
	for _, o := range objs {
		have[strings.TrimPrefix(o.Key, prefix)] = o.Size
	}
	return blobListing{have: have, took: time.Since(start)}
}

// uploadMissing uploads, in parallel, the blobs that the listing lacks.
func (s *Store) uploadMissing(ctx context.Context, project string, blobs map[string]*localFile, listing blobListing, log *slog.Logger) (uploaded, skipped int, err error) {
	if listing.err != nil {
		return 0, 0, listing.err
	}
	have := listing.have
	var missing []*localFile
	for sum, f := range blobs {
		// A blob of the wrong size is a torn write by some other tool; upload it again.
		if size, ok := have[sum]; ok && size == f.size {
			skipped++
			continue
		}
		missing = append(missing, f)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i].urlPath < missing[j].urlPath })
	log.Info("blobs to upload", "missing", len(missing), "present", skipped, "listed", listing.took.Round(time.Millisecond))

	started := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(uploadParallelism)
	for _, f := range missing {
		g.Go(func() error { return s.blobPut(gctx, project, f) })
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	log.Info("blobs uploaded", "uploaded", len(missing), "took", time.Since(started).Round(time.Millisecond))
	return len(missing), skipped, nil
}

func (s *Store) blobPut(ctx context.Context, project string, f *localFile) error {
	r, err := f.open()
	if err != nil {
		return err
	}
	defer r.Close()
	err = s.Storage.Put(ctx, BlobKey(project, f.sum), r, f.size, storage.PutOptions{SHA256: f.sum, ContentType: f.contentType})
	if err != nil {
		return fmt.Errorf("upload %s: %w", f.rel(), err)
	}
	return nil
}

// manifestPut writes m. With a caller's id (mayExist) it first looks for a manifest under that id: one with the
// same files and config is accepted (a retried publish); a different one is a conflict, because proxies cache
// manifests forever. A fresh id cannot exist yet, so that round trip is skipped.
func (s *Store) manifestPut(ctx context.Context, m *Manifest, mayExist bool) error {
	if mayExist {
		old, err := s.ManifestGet(ctx, m.Project, m.Deployment)
		switch {
		case err == nil:
			if sameContent(old, m) {
				return nil
			}
			return ferry.Errorf(ferry.ECONFLICT, "deployment %s of project %s already exists with other files; publish under a new id", m.Deployment, m.Project)
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return err
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := s.putBytes(ctx, ManifestKey(m.Project, m.Deployment), data); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

func sameContent(a, b *Manifest) bool {
	ja, erra := json.Marshal([]any{a.Files, a.Config})
	jb, errb := json.Marshal([]any{b.Files, b.Config})
	return errors.Join(erra, errb) == nil && bytes.Equal(ja, jb)
}
