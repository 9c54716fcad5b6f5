package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// InstallationHandler follows the App's installations: installing it creates a project per repository it
// reaches, uninstalling it removes them, and a suspended installation builds nothing until it is unsuspended.
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
		projects, err := d.Store.ProjectListByInstallation(ctx, inst.GetID())
		if err != nil {
			return "", err
		}
		for _, p := range projects {
			if _, err := d.Store.ProjectDeleteByID(ctx, p.ID); err != nil {
				return "", err
			}
			// TODO(storage): remove site.ProjectPrefix(p.Name) from storage with a cleanup job; until then the
			// files stay and the proxy keeps serving them.
			log.InfoContext(ctx, "project removed with its installation (its storage is kept)", "project", p.Name, "repository", p.Repository)
		}
		if err := d.Store.InstallationDelete(ctx, inst.GetID()); err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
			return "", err
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
