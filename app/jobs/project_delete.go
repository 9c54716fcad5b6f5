package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/storage"
)

// ProjectDeleteArgs asks for a project to be deleted: its aliases first (so its sites stop answering at once),
// then every storage object under its prefix, recording progress as it goes, and its database row last (with
// its deployments, logs and env vars). The project is already marked deleting (store.ProjectDeletionStart) and
// its unfinished builds canceled when the job is inserted.
//
// Without PurgeStorage it removes only what Ferry published for this project: the manifests of its deployment
// rows, the aliases that point at them (or at nothing), and the blobs that no remaining manifest names. A name's
// storage may also hold deployments that the GitHub Action or `ferry publish` wrote (docs/architecture.md, "Security model": storage is the
// source of truth, a name belongs to whoever published first); those, their blobs and their aliases stay.
type ProjectDeleteArgs struct {
	ProjectID int64 `json:"project_id"`
	// PurgeStorage removes everything under the project's prefix, whoever published it (confirmed by the user).
	PurgeStorage bool `json:"purge_storage,omitempty"`
}

// Kind is the River job kind.
func (ProjectDeleteArgs) Kind() string { return "project_delete" }

// InsertOpts: deleting is retried like a build; every pass starts from a fresh listing, so a retry resumes.
func (ProjectDeleteArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: 10}
}

type projectDeleteWorker struct {
	river.WorkerDefaults[ProjectDeleteArgs]
	*workerBase
}

// Timeout: a project with many blobs takes a while on S3.
func (w *projectDeleteWorker) Timeout(*river.Job[ProjectDeleteArgs]) time.Duration {
	return 30 * time.Minute
}

// projectDeletePasses bounds the listings: a build canceled by the deletion may still write its last objects
// for a moment after the first pass, and the next pass removes them.
const projectDeletePasses = 3

func (w *projectDeleteWorker) Work(ctx context.Context, job *river.Job[ProjectDeleteArgs]) error {
	st := w.deps.Store
	p, err := st.ProjectGetByID(ctx, job.Args.ProjectID)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil // an earlier attempt finished
	}
	if err != nil {
		return err
	}
	log := w.deps.Logger.With("project", p.Name, "job", job.ID)
	if _, err := st.DeploymentCancelUnfinished(ctx, store.DeploymentCancelUnfinishedParams{ProjectID: p.ID, Reason: "the project is being deleted"}); err != nil {
		return err
	}
	ours, err := st.DeploymentIDsByProject(ctx, p.ID)
	if err != nil {
		return err
	}
	own := make(map[string]bool, len(ours))
	for _, id := range ours {
		own[id] = true
	}
	aliases, err := w.deps.Site.AliasList(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("delete project %s: %w", p.Name, err)
	}
	removedAliases, keptAliases := 0, 0
	for _, a := range aliases {
		if !job.Args.PurgeStorage && !own[a.Deployment] {
			if _, err := w.deps.Site.Storage.Stat(ctx, site.ManifestKey(p.Name, a.Deployment)); err == nil {
				keptAliases++ // it shows a deployment that Ferry did not publish
				continue
			}
		}
		if err := w.deps.Site.AliasDelete(ctx, p.Name, a.Name); err != nil {
			return fmt.Errorf("delete project %s: %w", p.Name, err)
		}
		removedAliases++
	}
	done, kept := 0, 0
	for pass := 0; pass < projectDeletePasses; pass++ {
		objs, err := w.deps.Site.Storage.List(ctx, site.ProjectPrefix(p.Name))
		if err != nil {
			return fmt.Errorf("delete project %s: %w", p.Name, err)
		}
		keys, keep, err := w.deletable(ctx, p.Name, objs, own, job.Args.PurgeStorage)
		if err != nil {
			return fmt.Errorf("delete project %s: %w", p.Name, err)
		}
		kept = keep
		if len(keys) == 0 {
			break
		}
		total := done + len(keys)
		last := time.Now()
		for i, k := range keys {
			if err := w.deps.Site.Storage.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete project %s: %w", p.Name, err)
			}
			done++
			if i == len(keys)-1 || time.Since(last) > 250*time.Millisecond {
				last = time.Now()
				if err := st.ProjectDeletionProgress(ctx, store.ProjectDeletionProgressParams{ID: p.ID, Total: total, Done: done}); err != nil {
					return err
				}
			}
		}
		if pass < projectDeletePasses-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(w.deps.PollInterval * 2):
			}
		}
	}
	if _, err := st.ProjectDeleteByID(ctx, p.ID); err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	log.InfoContext(ctx, "project deleted", "objects", done, "aliases", removedAliases, "purge_storage", job.Args.PurgeStorage,
		"kept_objects", kept, "kept_aliases", keptAliases)
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}

// deletable picks, from a listing of the project's prefix, the keys to delete in order (manifests before blobs,
// so that no deployment ever names a blob that is gone) and counts those kept. With purge, that is everything.
// Otherwise it is the manifests of Ferry's own deployments (own), and the blobs that no other manifest names;
// other manifests, their blobs, aliases (handled before) and objects Ferry does not know stay.
func (w *projectDeleteWorker) deletable(ctx context.Context, project string, objs []storage.ObjectInfo, own map[string]bool, purge bool) (keys []string, kept int, err error) {
	manifestsPrefix := site.ProjectPrefix(project) + "deployments/"
	blobsPrefix := site.ProjectPrefix(project) + "blobs/"
	foreign := map[string]bool{} // blob names that a manifest Ferry did not publish still needs
	var blobs []string
	for _, o := range objs {
		id, isManifest := strings.CutSuffix(strings.TrimPrefix(o.Key, manifestsPrefix), ".json")
		isManifest = isManifest && strings.HasPrefix(o.Key, manifestsPrefix)
		switch {
		case purge && isManifest:
			keys = append(keys, o.Key)
		case purge:
			blobs = append(blobs, o.Key)
		case isManifest && own[id]:
			keys = append(keys, o.Key)
		case isManifest:
			kept++
			m, err := w.deps.Site.ManifestGet(ctx, project, id)
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				continue
			}
			if err != nil {
				// A manifest that cannot be read may still name any blob: keep them all.
				w.deps.Logger.WarnContext(ctx, "unreadable manifest of another publisher kept, with every blob", "key", o.Key, "err", err)
				foreign["*"] = true
				continue
			}
			for _, f := range m.Files {
				foreign[f.Blob] = true
			}
		case strings.HasPrefix(o.Key, blobsPrefix):
			blobs = append(blobs, o.Key)
		case strings.Contains(o.Key, "/aliases/"):
			kept++ // the aliases that stay (the others went first)
		default:
			kept++
		}
	}
	for _, k := range blobs {
		if !purge && (foreign["*"] || foreign[strings.TrimPrefix(k, blobsPrefix)]) {
			kept++
			continue
		}
		keys = append(keys, k)
	}
	return keys, kept, nil
}
