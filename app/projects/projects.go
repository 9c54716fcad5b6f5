// Package projects is Ferry's one service layer for projects and deployments: the REST API (app/api) and the
// dashboard (app/web) both call it, and neither touches the store for a change. Every method takes the id of
// the signed-in user and reaches only the projects that user may reach (store.ProjectGetForUser): anything
// else is ENOTFOUND, exactly as a project that does not exist, so that ids cannot be probed.
//
// Production is whatever the storage alias "production" points at: the proxy serves it, so it is the source of
// truth, and Promote and Rollback move it with one small object write (instant, no rebuild). The database
// keeps no second copy that could disagree; Project.ProductionDeploymentID is read from the alias.
package projects

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ferryhq/ferry/app/jobs"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/netpolicy"
	"github.com/ferryhq/ferry/internal/retention"
	"github.com/ferryhq/ferry/internal/site"
)

// Config is what a Service runs on.
type Config struct {
	// Store is the database, on a pool (the service opens its own transactions). Required.
	Store *store.Store
	// River inserts build and deletion jobs in the transactions that store their rows (an insert-only client
	// is enough). Required.
	River *river.Client[pgx.Tx]
	// Site reads and moves aliases in the storage builds publish to. Required.
	Site *site.Store
	// EnvCipher encrypts env var values (store.LoadSecretKey, --secret-key-file). nil: env vars cannot be
	// saved, and EnvSet says how to configure a key.
	EnvCipher *store.EnvCipher
	// Domain makes site URLs (site.DeploymentURL). Default "localhost".
	Domain string
	// PublicURL is the app's own URL, for the log links shown with deployments. Default: none.
	PublicURL string
	// AllowLocalRepos lets projects build from file:// URLs and local paths: `ferry dev` only, since on a
	// shared server it would let any user build whatever the server can read.
	AllowLocalRepos bool
	// LocalReposDir, when set, is the folder local repositories must be inside (after symbolic links are
	// resolved), so that a dashboard user cannot build whatever else the machine's user can read.
	LocalReposDir string
	// GitPolicy is the set of addresses that git URLs may lead to: public internet addresses, plus what the
	// operator allows (--git-allow-ranges) and loopback under `ferry dev`. The app itself runs `git ls-remote`
	// on users' URLs, so without it any user could probe the host's and the private network's services.
	GitPolicy netpolicy.Policy
	// AllowInsecureGit accepts http:// git URLs (`ferry dev`, or --git-allow-http). Default: https:// only.
	AllowInsecureGit bool
	// Resolver resolves git URLs' host names before git connects (git is then pinned to its answer). Default
	// net.DefaultResolver.
	Resolver HostResolver
	// ResolveRef turns a branch into the commit it points at, for "deploy now". Default: git ls-remote, with
	// an installation token when the project has an installation and Tokens is set.
	ResolveRef func(ctx context.Context, p *store.Project, branch string) (sha string, err error)
	// Tokens gives clone tokens for projects of GitHub App installations; nil resolves anonymously.
	Tokens func(ctx context.Context, installationID int64) (string, error)
	// Logger records who changed what. Default slog.Default().
	Logger *slog.Logger
	// DNS answers custom-domain ownership checks. Default net.DefaultResolver.
	DNS Resolver
	// Retention is the server's default retention policy (--retention-*). Zero: retention.Defaults.
	Retention retention.Policy
}

// HostResolver is what the git URL check needs of a DNS resolver; *net.Resolver is one.
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ HostResolver = (*net.Resolver)(nil)

// Service is the projects service. It is safe for concurrent use.
type Service struct {
	cfg Config
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.River == nil || cfg.Site == nil {
		return nil, ferry.Errorf(ferry.EINVALID, "projects: Store, River and Site are required")
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg}
	if s.cfg.ResolveRef == nil {
		s.cfg.ResolveRef = s.lsRemote
	}
	return s, nil
}

// Limits on what users send, so that every field has a clear bound and message.
const (
	MaxGitURL      = 2048
	MaxBranch      = 255
	MaxCommand     = 4096
	MaxPath        = 1024
	MaxEnvKey      = 256
	MaxEnvValue    = 64 << 10
	MaxEnvPerEnv   = 500
	maxListPerPage = 100
)

// Project is a project as users see it.
type Project struct {
	ID               int64     `json:"id"`
	Name             string    `json:"name"`
	GitURL           string    `json:"gitUrl"`
	Repository       string    `json:"repository,omitempty"` // "owner/name" for GitHub App projects
	ProductionBranch string    `json:"productionBranch"`
	Settings         Settings  `json:"settings"`
	URL              string    `json:"url"` // the production URL, <name>.D
	OwnerID          int64     `json:"ownerId,omitempty"`
	InstallationID   int64     `json:"installationId,omitempty"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
	// ProductionDeploymentID is what the production alias points at ("" when nothing is live). ProjectGet
	// fills it in; lists leave it empty (it costs a storage read).
	ProductionDeploymentID string `json:"productionDeploymentId,omitempty"`
	// Deletion is set while the project is being deleted in the background.
	Deletion *Deletion `json:"deletion,omitempty"`
	// Blocked says why the project does not build (the GitHub App was uninstalled from its repository); its
	// site keeps serving. Empty when it builds.
	Blocked string `json:"blocked,omitempty"`
}

// Deletion is the progress of a project's deletion.
type Deletion struct {
	StartedAt time.Time `json:"startedAt"`
	// Total is the storage objects found so far, Done those removed; both grow until the row goes.
	Total int `json:"total"`
	Done  int `json:"done"`
}

// Settings are a project's build and preview options, stored as JSON in projects.settings (store.ProjectSettings,
// which webhook intake and the deploy worker read too).
type Settings = store.ProjectSettings

// Overrides replace ferry.json's build settings; nil keeps ferry.json's (or the detected) value, and an empty
// BuildCommand builds nothing.
type Overrides = store.ProjectOverrides

// DefaultSettings are a new project's settings.
func DefaultSettings() Settings { return store.DefaultProjectSettings() }

// parseSettings reads stored settings; keys it does not know are kept by mergeSettings.
func parseSettings(raw json.RawMessage) Settings {
	s, _ := store.ParseProjectSettings(raw) // the schema keeps it valid JSON; a wrong type leaves the default
	return s
}

// mergeSettings writes s over raw, keeping keys that s does not know (webhook intake reads some of them).
func mergeSettings(raw json.RawMessage, s Settings) (json.RawMessage, error) {
	m := map[string]any{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			m = map[string]any{}
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	var sm map[string]any
	if err := json.Unmarshal(b, &sm); err != nil {
		return nil, fmt.Errorf("encode settings: %w", err)
	}
	for k, v := range sm {
		m[k] = v
	}
	return json.Marshal(m)
}

func (s *Service) view(p *store.Project) *Project {
	return &Project{
		ID: p.ID, Name: p.Name, GitURL: p.CloneURL, Repository: p.Repository, ProductionBranch: p.ProductionBranch,
		Blocked:  p.GitHubBlocked,
		Settings: parseSettings(p.Settings), URL: site.DeploymentURL(s.cfg.Domain, p.Name, site.ProductionAlias),
		OwnerID: p.OwnerID, InstallationID: p.InstallationID, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
	}
}

// withDeletion adds the deletion progress to v.
func (s *Service) withDeletion(ctx context.Context, v *Project) (*Project, error) {
	d, err := s.cfg.Store.ProjectDeletionGet(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	if d != nil {
		v.Deletion = &Deletion{StartedAt: d.StartedAt, Total: d.Total, Done: d.Done}
	}
	return v, nil
}

// project finds a project by name for user, or ENOTFOUND.
func (s *Service) project(ctx context.Context, userID int64, name string) (*store.Project, error) {
	if userID == 0 {
		return nil, ferry.Errorf(ferry.EUNAUTHORIZED, "sign in first")
	}
	if err := site.ValidateProjectName(name); err != nil {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "project %q not found", name)
	}
	p, err := s.cfg.Store.ProjectGetByNameForUser(ctx, userID, name)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "project %q not found", name)
	}
	return p, err
}

// writableProject is project, refusing a project that is being deleted.
func (s *Service) writableProject(ctx context.Context, userID int64, name string) (*store.Project, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	d, err := s.cfg.Store.ProjectDeletionGet(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if d != nil {
		return nil, ferry.Errorf(ferry.ECONFLICT, "project %s is being deleted", p.Name)
	}
	return p, nil
}

// ProjectCreateParams describes a new project.
type ProjectCreateParams struct {
	// GitURL is a public https:// repository URL (http:// only with AllowInsecureGit, file:// and local paths
	// only with AllowLocalRepos). Required.
	GitURL string `json:"gitUrl"`
	// Name is the host label and storage prefix; default: made from the repository's name.
	Name string `json:"name,omitempty"`
	// ProductionBranch defaults to "main".
	ProductionBranch string `json:"productionBranch,omitempty"`
	// Settings default to DefaultSettings().
	Settings *Settings `json:"settings,omitempty"`
}

// ProjectCreate creates a project owned by the user. A taken name is ECONFLICT; nothing is created on error.
func (s *Service) ProjectCreate(ctx context.Context, userID int64, p ProjectCreateParams) (*Project, error) {
	if userID == 0 {
		return nil, ferry.Errorf(ferry.EUNAUTHORIZED, "sign in first")
	}
	gitURL, err := s.validateGitURL(p.GitURL)
	if err != nil {
		return nil, err
	}
	name := p.Name
	if name == "" {
		name = site.ProjectNameFromRepo(repoBaseName(gitURL))
	}
	if err := site.ValidateProjectName(name); err != nil {
		return nil, err
	}
	branch := p.ProductionBranch
	if branch == "" {
		branch = "main"
	}
	if err := validateBranch(branch); err != nil {
		return nil, err
	}
	settings := DefaultSettings()
	if p.Settings != nil {
		settings = *p.Settings
	}
	if err := validateSettings(settings); err != nil {
		return nil, err
	}
	raw, err := mergeSettings(nil, settings)
	if err != nil {
		return nil, err
	}
	if err := s.claimName(ctx, userID, name, gitURL); err != nil {
		return nil, err
	}
	proj, err := s.cfg.Store.ProjectCreate(ctx, store.ProjectCreateParams{Name: name, CloneURL: gitURL, OwnerID: userID,
		ProductionBranch: branch, Settings: raw})
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		return nil, ferry.Errorf(ferry.ECONFLICT, "a project named %q already exists; choose another name", name)
	}
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "project created", "project", proj.Name, "user", userID, "git_url", gitURL)
	return s.view(proj), nil
}

// claimName lets userID take a project name that storage may already hold (docs/architecture.md, "Security model": a name in storage belongs
// to whoever published it first). A name with nothing stored is free. A held one is the user's only when every
// stored deployment names one GitHub repository, gitURL is that repository on github.com, and the user belongs
// to a GitHub App installation of it; anything else is ECONFLICT saying how to go on. Otherwise any signed-up
// user could take over a site that the Action publishes, and deleting the project would delete it.
func (s *Service) claimName(ctx context.Context, userID int64, name, gitURL string) error {
	// A project of Ferry's own has the name (its deployments are what storage holds): the usual conflict.
	switch _, err := s.cfg.Store.ProjectGetByName(ctx, name); {
	case err == nil:
		return ferry.Errorf(ferry.ECONFLICT, "a project named %q already exists; choose another name", name)
	case ferry.ErrorCode(err) != ferry.ENOTFOUND:
		return err
	}
	occ, err := s.cfg.Site.Occupant(ctx, name)
	if err != nil || occ == nil {
		return err
	}
	if repo := site.GitHubRepository(gitURL); occ.OwnedBy(repo) {
		ok, err := s.cfg.Store.UserReachesRepository(ctx, userID, repo)
		if err != nil || ok {
			return err
		}
	}
	s.cfg.Logger.InfoContext(ctx, "project name refused: taken in storage", "project", name, "user", userID,
		"objects", occ.Objects, "repositories", occ.Repositories)
	return occ.TakenError()
}

// ProjectList returns the projects the user may reach, newest first.
func (s *Service) ProjectList(ctx context.Context, userID int64) ([]*Project, error) {
	if userID == 0 {
		return nil, ferry.Errorf(ferry.EUNAUTHORIZED, "sign in first")
	}
	ps, err := s.cfg.Store.ProjectListForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]*Project, 0, len(ps))
	for _, p := range ps {
		v, err := s.withDeletion(ctx, s.view(p))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ProjectGet returns one project with its production deployment and any deletion in progress.
func (s *Service) ProjectGet(ctx context.Context, userID int64, name string) (*Project, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	v, err := s.withDeletion(ctx, s.view(p))
	if err != nil {
		return nil, err
	}
	if v.Deletion == nil {
		a, err := s.cfg.Site.AliasGet(ctx, p.Name, site.ProductionAlias)
		switch {
		case err == nil:
			v.ProductionDeploymentID = a.Deployment
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return nil, err
		}
	}
	return v, nil
}

// Alias is one of a project's aliases as users see it.
type Alias struct {
	Name         string    `json:"name"`
	DeploymentID string    `json:"deploymentId"`
	URL          string    `json:"url"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// ProjectAliases returns a project's aliases (production, pr-<n>, git-<branch>) with their URLs.
func (s *Service) ProjectAliases(ctx context.Context, userID int64, name string) ([]Alias, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	as, err := s.cfg.Site.AliasList(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	out := make([]Alias, 0, len(as))
	for _, a := range as {
		out = append(out, Alias{Name: a.Name, DeploymentID: a.Deployment, UpdatedAt: a.UpdatedAt,
			URL: site.DeploymentURL(s.cfg.Domain, p.Name, a.Name)})
	}
	return out, nil
}

// ProjectUpdateParams changes a project; nil fields stay as they are.
type ProjectUpdateParams struct {
	// Name renames the project. Its name is its URL and storage prefix, so it can change only while the
	// project has no deployments.
	Name             *string   `json:"name,omitempty"`
	ProductionBranch *string   `json:"productionBranch,omitempty"`
	Settings         *Settings `json:"settings,omitempty"`
}

// ProjectUpdateSettings applies p to the project named name.
func (s *Service) ProjectUpdateSettings(ctx context.Context, userID int64, name string, p ProjectUpdateParams) (*Project, error) {
	proj, err := s.writableProject(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	up := store.ProjectUpdateParams{ID: proj.ID, ProductionBranch: p.ProductionBranch}
	if p.Name != nil && *p.Name != proj.Name {
		if err := site.ValidateProjectName(*p.Name); err != nil {
			return nil, err
		}
		n, err := s.cfg.Store.DeploymentCountByProject(ctx, proj.ID)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, ferry.Errorf(ferry.ECONFLICT, "project %s has deployments, and its name is in their URLs and storage; it cannot be renamed (create a new project instead)", proj.Name)
		}
		if err := s.claimName(ctx, userID, *p.Name, proj.CloneURL); err != nil {
			return nil, err
		}
		up.Name = p.Name
	}
	if p.ProductionBranch != nil {
		if err := validateBranch(*p.ProductionBranch); err != nil {
			return nil, err
		}
	}
	if p.Settings != nil {
		if err := validateSettings(*p.Settings); err != nil {
			return nil, err
		}
		if up.Settings, err = mergeSettings(proj.Settings, *p.Settings); err != nil {
			return nil, err
		}
	}
	updated, err := s.cfg.Store.ProjectUpdate(ctx, up)
	if ferry.ErrorCode(err) == ferry.ECONFLICT {
		return nil, ferry.Errorf(ferry.ECONFLICT, "a project named %q already exists; choose another name", *p.Name)
	}
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "project settings changed", "project", updated.Name, "user", userID)
	return s.view(updated), nil
}

// ProjectDeleteParams are the options of a deletion.
type ProjectDeleteParams struct {
	// PurgeStorage also removes what storage holds under the name that Ferry did not publish for this project
	// (the GitHub Action's or `ferry publish`'s deployments, their blobs and aliases). Without it those stay,
	// and so the name stays taken in storage.
	PurgeStorage bool
	// Confirm must be the project's name when PurgeStorage is set.
	Confirm string
}

// ProjectDelete starts deleting a project in the background (jobs.ProjectDeleteArgs): its unfinished builds
// stop at once, then the aliases and storage objects of the deployments Ferry built for it, its deployments and
// its env vars go. What others published under the same name stays unless p.PurgeStorage, confirmed with the
// name. The returned project carries Deletion; ProjectGet shows the progress until the project is gone
// (ENOTFOUND). A second request while one runs is ECONFLICT.
func (s *Service) ProjectDelete(ctx context.Context, userID int64, name string, params ProjectDeleteParams) (*Project, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	if params.PurgeStorage && params.Confirm != p.Name {
		return nil, ferry.Errorf(ferry.EINVALID, "purging storage removes deployments that Ferry did not publish too: confirm by passing the project's name, %s (API: ?purge_storage=true&confirm=%s)", p.Name, p.Name)
	}
	var d *store.ProjectDeletion
	err = s.cfg.Store.InTx(ctx, func(st *store.Store, tx pgx.Tx) error {
		var err error
		if d, err = st.ProjectDeletionStart(ctx, p.ID); err != nil {
			return err
		}
		if _, err := st.DeploymentCancelUnfinished(ctx, store.DeploymentCancelUnfinishedParams{ProjectID: p.ID, Reason: "the project is being deleted"}); err != nil {
			return err
		}
		if _, err := s.cfg.River.InsertTx(ctx, tx, jobs.ProjectDeleteArgs{ProjectID: p.ID, PurgeStorage: params.PurgeStorage}, nil); err != nil {
			return ferry.Errorf(ferry.EUNAVAILABLE, "enqueue project deletion: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "project deletion started", "project", p.Name, "user", userID, "purge_storage", params.PurgeStorage)
	v := s.view(p)
	v.Deletion = &Deletion{StartedAt: d.StartedAt}
	return v, nil
}
