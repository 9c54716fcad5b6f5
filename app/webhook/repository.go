package webhook

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// RepositoryHandler follows renames and transfers: the project keeps its name, id, deployments and site, and
// clones from where the repository is now. The repository id is what ties them, so nothing else is needed.
type RepositoryHandler struct{}

var _ EventHandler = RepositoryHandler{}

// Handles names the event.
func (RepositoryHandler) Handles() []string { return []string{"repository"} }

// Handle applies renamed and transferred; other actions (edited, privatized...) change nothing Ferry keeps.
func (RepositoryHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.RepositoryEvent)
	if !ok {
		return "", payloadError("repository event of an unexpected type")
	}
	switch ev.GetAction() {
	case "renamed", "transferred":
	default:
		return OutcomeIgnored, nil
	}
	r := ev.GetRepo()
	if r.GetID() == 0 || r.GetFullName() == "" || r.GetCloneURL() == "" {
		return "", payloadError("repository event without repository.id, full_name or clone_url")
	}
	log := d.Log.With("repository", r.GetFullName())
	p, err := d.Store.ProjectGetByRepoID(ctx, r.GetID())
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		log.InfoContext(ctx, "repository with no project "+ev.GetAction()+", ignored")
		return OutcomeIgnored, nil
	}
	if err != nil {
		return "", err
	}
	from := p.Repository
	if _, err := d.Store.ProjectSetRepository(ctx, store.ProjectSetRepositoryParams{ID: p.ID, Repository: r.GetFullName(), CloneURL: r.GetCloneURL()}); err != nil {
		return "", err
	}
	log.InfoContext(ctx, "project follows its repository", "action", ev.GetAction(), "project", p.Name, "from", from)
	return OutcomeAccepted, nil
}
