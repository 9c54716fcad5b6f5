package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/store"
)

// InstallationHandler follows the App's installations: installing it creates a project per repository it
// reaches, uninstalling it blocks them (their sites keep serving), and a suspended installation builds nothing
// until it is unsuspended.
type InstallationHandler struct{}

var _ EventHandler = InstallationHandler{}

// Handles names the event.
func (InstallationHandler) Handles() []string { return []string{"installation"} }

// Handle applies created, deleted, suspend and unsuspend; new_permissions_accepted is logged, anything else ignored.
func (InstallationHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.InstallationEvent)
	if !ok || ev.GetInstallation().GetID() == 0 {
		return "", payloadError("installation event without an installation id")
	}
	inst := ev.GetInstallation()
	log := d.Log.With("installation", inst.GetID(), "account", inst.GetAccount().GetLogin())
	switch ev.GetAction() {
	case "created", "suspend", "unsuspend":
		var suspendedAt time.Time
		switch ev.GetAction() {
		case "suspend":
			suspendedAt = inst.GetSuspendedAt().Time
			if suspendedAt.IsZero() {
				suspendedAt = time.Now()
			}
		case "created":
			suspendedAt = inst.GetSuspendedAt().Time
		}
		// An upsert, so that an installation Ferry missed (the App installed before Ferry's database existed)
		// is recorded by whichever of its events arrives first.
		if err := installationUpsert(ctx, d, inst, suspendedAt); err != nil {
			return "", err
		}
		if ev.GetAction() != "created" {
			log.InfoContext(ctx, "installation "+ev.GetAction(), "suspended", !suspendedAt.IsZero())
			return OutcomeAccepted, nil
		}
		for _, r := range ev.Repositories {
			p, created, err := projectEnsure(ctx, d, repo{ID: r.GetID(), Name: r.GetName(), FullName: r.GetFullName()}, inst.GetID())
			if err != nil {
				return "", fmt.Errorf("add repository %s: %w", r.GetFullName(), err)
			}
			log.InfoContext(ctx, "project for installed repository", "project", p.Name, "repository", p.Repository, "created", created)
		}
		return OutcomeAccepted, nil

	case "deleted":
		// The projects stay, blocked: their sites keep serving and their owners see why nothing builds until
		// they delete them or install the App again (a new installation re-links them by repository id). The
		// installation row stays too, marked suspended, so that its members keep reaching the projects on the
		// dashboard and nothing builds for it.
		if err := installationUpsert(ctx, d, inst, time.Now()); err != nil {
			return "", err
		}
		projects, err := d.Store.ProjectListByInstallation(ctx, inst.GetID())
		if err != nil {
			return "", err
		}
		reason := fmt.Sprintf("The GitHub App was uninstalled from %s on %s: nothing builds. The site keeps serving until you delete the project; install the App again to resume.",
			inst.GetAccount().GetLogin(), time.Now().UTC().Format("2006-01-02"))
		for _, p := range projects {
			if err := d.Store.ProjectSetGitHubBlocked(ctx, p.ID, reason); err != nil {
				return "", err
			}
			log.InfoContext(ctx, "project blocked: its installation was removed (its site keeps serving)", "project", p.Name, "repository", p.Repository)
		}
		log.InfoContext(ctx, "installation deleted", "projects", len(projects))
		return OutcomeAccepted, nil

	case "new_permissions_accepted":
		log.InfoContext(ctx, "installation accepted new permissions")
		return OutcomeAccepted, nil
	}
	log.InfoContext(ctx, "installation action ignored")
	return OutcomeIgnored, nil
}

func installationUpsert(ctx context.Context, d *Delivery, inst *github.Installation, suspendedAt time.Time) error {
	_, err := d.Store.InstallationUpsert(ctx, store.InstallationUpsertParams{
		ID: inst.GetID(), AccountLogin: inst.GetAccount().GetLogin(), AccountType: inst.GetAccount().GetType(),
		AccountID: inst.GetAccount().GetID(), SuspendedAt: suspendedAt,
	})
	return err
}
