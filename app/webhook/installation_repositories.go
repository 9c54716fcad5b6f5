package webhook

import (
	"context"
	"fmt"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// InstallationRepositoriesHandler follows repositories granted to or taken from an installation: projects appear
// and disappear with the App's access.
type InstallationRepositoriesHandler struct{}

var _ EventHandler = InstallationRepositoriesHandler{}

// Handles names the event.
func (InstallationRepositoriesHandler) Handles() []string {
	return []string{"installation_repositories"}
}

// Handle creates a project per added repository and deletes the project of each removed one.
func (InstallationRepositoriesHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.InstallationRepositoriesEvent)
	if !ok || ev.GetInstallation().GetID() == 0 {
		return "", payloadError("installation_repositories event without an installation id")
	}
	inst := ev.GetInstallation()
	log := d.Log.With("installation", inst.GetID())
	if len(ev.RepositoriesAdded) > 0 {
		// The installation may be unknown (Ferry missed its created event); its projects need its row. Its
		// suspension is kept: this payload's installation object carries suspended_at too.
		if err := installationUpsert(ctx, d, inst, inst.GetSuspendedAt().Time); err != nil {
			return "", err
		}
	}
	for _, r := range ev.RepositoriesAdded {
		p, created, err := projectEnsure(ctx, d, repo{ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName()}, inst.GetID())
		if err != nil {
			return "", fmt.Errorf("add repository %s: %w", r.GetFullName(), err)
		}
		log.InfoContext(ctx, "project for added repository", "project", p.Name, "repository", p.Repository, "created", created)
	}
	for _, r := range ev.RepositoriesRemoved {
		p, err := d.Store.ProjectDeleteByRepoID(ctx, r.GetID())
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			log.InfoContext(ctx, "removed repository had no project", "repository", r.GetFullName())
			continue
		}
		if err != nil {
			return "", fmt.Errorf("remove repository %s: %w", r.GetFullName(), err)
		}
		// TODO(storage): remove site.ProjectPrefix(p.Name) from storage with a cleanup job.
		log.InfoContext(ctx, "project removed with its repository (its storage is kept)", "project", p.Name, "repository", p.Repository)
	}
	if len(ev.RepositoriesAdded)+len(ev.RepositoriesRemoved) == 0 {
		return OutcomeIgnored, nil
	}
	return OutcomeAccepted, nil
}
