package site

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Occupant is what storage holds under a project name. Storage is the source of truth for what is live, and
// the GitHub Action and `ferry publish` write there without the App's database knowing: a name is taken as
// soon as anything is stored under it, and the App lets only someone who proves ownership claim it.
type Occupant struct {
	Project string
	// Objects is the number of objects under the name's prefix.
	Objects int
	// Deployments are the ids of the stored manifests, sorted.
	Deployments []string
	// Repositories are the GitHub repositories ("owner/name", lowercase) that the manifests say they were
	// published from (meta "repository", as the Action writes, or a github.com meta "repo" URL, as ferry build
	// writes), sorted and distinct.
	Repositories []string
	// Unattributed counts the manifests that name no repository.
	Unattributed int
}

// Occupant returns what storage holds under project, or nil when it holds nothing there.
func (s *Store) Occupant(ctx context.Context, project string) (*Occupant, error) {
	if err := ValidateProjectName(project); err != nil {
		return nil, err
	}
	prefix := ProjectPrefix(project)
	objs, err := s.Storage.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("look at storage under %s: %w", prefix, err)
	}
	if len(objs) == 0 {
		return nil, nil
	}
	o := &Occupant{Project: project, Objects: len(objs)}
	for _, obj := range objs {
		id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, prefix+"deployments/"), ".json")
		if ok && IsDeploymentID(id) {
			o.Deployments = append(o.Deployments, id)
		}
	}
	sort.Strings(o.Deployments)
	repos := make([]string, len(o.Deployments))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range o.Deployments {
		g.Go(func() error {
			m, err := s.ManifestGet(gctx, project, id)
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				return nil
			}
			if err != nil {
				return err
			}
			repos[i] = ManifestRepository(m)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("read the manifests under %s: %w", prefix, err)
	}
	seen := map[string]bool{}
	for _, r := range repos {
		switch {
		case r == "":
			o.Unattributed++
		case !seen[r]:
			seen[r] = true
			o.Repositories = append(o.Repositories, r)
		}
	}
	sort.Strings(o.Repositories)
	return o, nil
}

// OwnedBy reports whether the stored deployments all say they come from repository ("owner/name"), so that
// whoever proves access to that repository on GitHub may take the name. Objects without a manifest (blobs,
// aliases) say nothing, so a prefix with no manifest is owned by nobody who can prove it.
func (o *Occupant) OwnedBy(repository string) bool {
	return repository != "" && o.Unattributed == 0 && len(o.Repositories) == 1 &&
		o.Repositories[0] == strings.ToLower(repository)
}

// TakenError is the ECONFLICT for a name that storage holds and the caller cannot prove is theirs: it says
// by what, and how to go on.
func (o *Occupant) TakenError() error {
	if len(o.Repositories) == 1 && o.Unattributed == 0 {
		r := o.Repositories[0]
		return ferry.Errorf(ferry.ECONFLICT, "the name %q is taken in storage: it holds %d deployment(s) of %s published outside this Ferry "+
			"(by the GitHub Action or ferry publish). Choose another name; or, if the site is yours, install the Ferry GitHub App "+
			"on %s and sign in with GitHub, so that the App's project for %s takes the name", o.Project, len(o.Deployments), r, r, r)
	}
	return ferry.Errorf(ferry.ECONFLICT, "the name %q is taken in storage: %d object(s) under projects/%s/ were published outside "+
		"this Ferry (by the GitHub Action or ferry publish) and name no single repository that ownership can be proved for. "+
		"Choose another name (whoever owns the storage can remove projects/%s/ to free it)", o.Project, o.Objects, o.Project, o.Project)
}

// ManifestRepository is the GitHub repository ("owner/name", lowercase) a manifest says it was published
// from, or "".
func ManifestRepository(m *Manifest) string {
	if r := m.Meta["repository"]; r != "" {
		return strings.ToLower(r)
	}
	return GitHubRepository(m.Meta["repo"])
}

// GitHubRepository returns "owner/name" (lowercase) for a https://github.com/owner/name(.git) URL, and ""
// for anything else.
func GitHubRepository(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || !strings.EqualFold(u.Host, "github.com") {
		return ""
	}
	parts := strings.Split(strings.Trim(strings.TrimSuffix(u.Path, ".git"), "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return ""
	}
	return strings.ToLower(parts[0] + "/" + parts[1])
}
