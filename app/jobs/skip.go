package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// CleanRoot is a root directory as a repository-relative folder without slashes at its ends; "" is the whole
// repository.
func CleanRoot(root string) string {
	return strings.Trim(path.Clean("/"+strings.TrimSpace(root)), "/")
}

// Touches reports whether any of files (repository-relative paths) lies under root ("" or "." is everything):
// whether a monorepo project's site changed.
func Touches(files []string, root string) bool {
	root = CleanRoot(root)
	if root == "" {
		return true
	}
	prefix := root + "/"
	for _, f := range files {
		if f == root || strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

// unchanged asks GitHub what a push too long for its payload changed (DeployArgs.CompareBase) and reports
// whether nothing under the project's root directory did, with the root. Any doubt (no root, no GitHub, a
// failed or cut comparison) answers false: the build runs.
func (w *deployWorker) unchanged(ctx context.Context, log *slog.Logger, p *store.Project, d *store.Deployment, base string) (bool, string) {
	s, err := store.ParseProjectSettings(p.Settings)
	if err != nil || s.AlwaysBuild || s.Overrides.RootDirectory == nil || CleanRoot(*s.Overrides.RootDirectory) == "" {
		return false, ""
	}
	root := CleanRoot(*s.Overrides.RootDirectory)
	gh := w.github(p)
	if gh == nil {
		return false, root
	}
	files, complete, err := gh.r.ChangedFiles(ctx, gh.owner, gh.name, base, d.CommitSHA)
	if err != nil {
		log.WarnContext(ctx, "compare the push's commits; building anyway", "base", base, "err", err)
		return false, root
	}
	return complete && !Touches(files, root), root
}

// skip ends a deployment whose push changed nothing under its project's root directory: canceled with the
// reason, its GitHub deployment inactive, its check run "skipped" and its commit status success (so that a
// required ferry/<project> check does not block the merge).
func (w *deployWorker) skip(ctx context.Context, log *slog.Logger, job *river.Job[DeployArgs], p *store.Project, id, root string) error {
	msg := fmt.Sprintf("skipped: the push changed nothing under %s/ (set alwaysBuild to build every push)", root)
	_, err := w.deps.Store.DeploymentUpdateStatus(ctx, store.DeploymentUpdateStatusParams{ID: id, Status: store.StatusCanceled, Error: msg})
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		return nil
	}
	if err != nil {
		return w.infra(ctx, log, job, p, id, err)
	}
	w.logLine(ctx, log, id, msg)
	log.InfoContext(ctx, "deployment skipped: nothing changed under the root directory", "root_directory", root)
	w.m.jobs.WithLabelValues(job.Kind, "skipped").Inc()
	gh := w.github(p)
	if gh == nil {
		return nil
	}
	err = w.withLock(ctx, id, func(st *store.Store, d *store.Deployment) error {
		if d.GitHubDeploymentID != 0 {
			if err := gh.r.DeploymentStatusCreate(ctx, ghreport.DeploymentStatusCreateParams{Owner: gh.owner, Repo: gh.name,
				DeploymentID: d.GitHubDeploymentID, State: ghreport.StateInactive, LogURL: w.logURL(id), Description: "Skipped: no change under " + root + "/"}); err != nil {
				return err
			}
		}
		if err := gh.r.CommitStatusCreate(ctx, ghreport.CommitStatusCreateParams{Owner: gh.owner, Repo: gh.name, SHA: d.CommitSHA,
			Project: p.Name, State: ghreport.StateSuccess, TargetURL: w.logURL(id), Description: "Skipped: no change under " + root + "/"}); err != nil {
			return err
		}
		w.checkRun(ctx, st, gh, p, d, checkState{status: ghreport.CheckCompleted, conclusion: ghreport.ConclusionSkipped,
			title: "Skipped", summary: "The push changed nothing under `" + mdCell(root) + "/`: nothing was built."})
		return nil
	})
	if err != nil {
		log.WarnContext(ctx, "report the skipped deployment to GitHub", "err", err)
	}
	return nil
}
