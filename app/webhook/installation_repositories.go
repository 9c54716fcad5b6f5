package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// InstallationRepositoriesHandler follows repositories granted to or taken from an installation: projects appear
// with the App's access, and stop building (their sites serving on) when it goes.
type InstallationRepositoriesHandler struct{}

var _ EventHandler = InstallationRepositoriesHandler{}

// Handles names the event.
func (InstallationRepositoriesHandler) Handles() []string {
	return []string{"installation_repositories"}
}

// Handle creates a project per added repository (or unblocks the one it had) and blocks the project of each
// removed one.
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
		// As with an uninstall: the project stays, blocked, its site serving, until its owner deletes it or the
		// repository is added back.
		p, err := d.Store.ProjectGetByRepoID(ctx, r.GetID())
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			log.InfoContext(ctx, "removed repository had no project", "repository", r.GetFullName())
			continue
		}
		if err != nil {
			return "", fmt.Errorf("remove repository %s: %w", r.GetFullName(), err)
		}
		reason := fmt.Sprintf("The repository %s was removed from the GitHub App's installation on %s: nothing builds. The site keeps serving until you delete the project; add the repository to the installation again to resume.",
			r.GetFullName(), time.Now().UTC().Format("2006-01-02"))
		if err := d.Store.ProjectSetGitHubBlocked(ctx, p.ID, reason); err != nil {
			return "", err
		}
		log.InfoContext(ctx, "project blocked: its repository left the installation (its site keeps serving)", "project", p.Name, "repository", p.Repository)
	}
	if len(ev.RepositoriesAdded)+len(ev.RepositoriesRemoved) == 0 {
		return OutcomeIgnored, nil
	}
	return OutcomeAccepted, nil
}
