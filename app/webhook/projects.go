package webhook

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// repo is what intake needs of a repository, whichever payload type carried it (installation events list
// bare repositories; push has its own repository type; pull_request the full one).
type repo struct {
	ID            int64
	Name          string // "Hello-World"
	FullName      string // "Codertocat/Hello-World"
	CloneURL      string // empty in installation events
	DefaultBranch string // empty in installation events
}

// maxNameAttempts bounds the numbered suffixes tried for a taken project name before a random one.
const maxNameAttempts = 20

// projectEnsure returns the project of r, creating it (linked to installationID) when Ferry does not know the
// repository yet. A known project is re-linked to installationID when it differs, as after a reinstall.
func projectEnsure(ctx context.Context, d *Delivery, r repo, installationID int64) (p *store.Project, created bool, err error) {
	p, err = d.Store.ProjectGetByRepoID(ctx, r.ID)
	switch {
	case err == nil:
		if installationID != 0 && (p.InstallationID != installationID || p.GitHubBlocked != "") {
			p, err = d.Store.ProjectSetInstallation(ctx, store.ProjectSetInstallationParams{ID: p.ID, InstallationID: installationID})
			if err != nil {
				return nil, false, err
			}
		}
		return p, false, nil
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return nil, false, err
	}
	if r.ID == 0 || r.FullName == "" {
		return nil, false, payloadError("a repository without id or full_name")
	}
	// Installation events carry no clone URL: the repo_sync job asks the API (GitHub Enterprise and proxies
	// lay URLs out their own way), and fills in the default branch as the production branch. Until it has, a
	// build of the project waits (it is retried).
	cloneURL := r.CloneURL
	base := site.ProjectNameFromRepo(r.Name)
	for attempt := 1; ; attempt++ {
		name := projectNameCandidate(base, attempt)
		// A name that storage holds for anything but this repository (the Action's or `ferry publish`'s site of
		// another repository, or of none) is someone else's: the signed event proves access to r alone.
		occ, err := d.site.Occupant(ctx, name)
		if err != nil {
			return nil, false, ferry.Wrap(ferry.EUNAVAILABLE, err)
		}
		if occ != nil && !occ.OwnedBy(r.FullName) {
			d.Log.InfoContext(ctx, "project name taken in storage by another publisher; trying the next", "name", name,
				"repository", r.FullName, "stored_repositories", occ.Repositories)
			continue
		}
		// A savepoint per attempt: a failed INSERT would otherwise abort the whole intake transaction.
		err = d.Store.InTx(ctx, func(st *store.Store, _ pgx.Tx) error {
			p, err = st.ProjectCreate(ctx, store.ProjectCreateParams{
				Name: name, Repository: r.FullName, CloneURL: cloneURL, GitHubRepoID: r.ID,
				InstallationID: installationID, ProductionBranch: r.DefaultBranch,
			})
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil && cloneURL == "" {
			if err := jobs.InsertRepoSync(ctx, d.River, d.Tx, jobs.RepoSyncArgs{ProjectID: p.ID, SetProductionBranch: r.DefaultBranch == ""}); err != nil {
				return nil, false, ferry.Wrap(ferry.EUNAVAILABLE, err)
			}
		}
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			return p, err == nil, err
		}
		if pgErr.ConstraintName != "projects_name_key" {
			// Another delivery created this repository's project meanwhile.
			p, err = d.Store.ProjectGetByRepoID(ctx, r.ID)
			return p, false, err
		}
	}
}

// projectNameCandidate is the name tried on the given attempt: the slug, then slug-2, slug-3... and, once
// those are exhausted, slug-<random hex>, each cut so that the whole name stays valid.
func projectNameCandidate(base string, attempt int) string {
	var suffix string
	switch {
	case attempt <= 1:
		return base
	case attempt <= maxNameAttempts:
		suffix = "-" + strconv.Itoa(attempt)
	default:
		id := site.NewDeploymentID() // "dpl-" + time + random: its tail is random
		suffix = "-" + id[len(id)-6:]
	}
	return cut(base, site.MaxProjectName-len(suffix)) + suffix
}

// cut shortens a slug to at most n bytes without leaving a trailing hyphen.
func cut(s string, n int) string {
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	return s
}
