package webhook

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport"
)

// DeploymentActions is what a check run's buttons do, with the dashboard's own authorization: userID must be
// able to change the deployment's project there. *projects.Service satisfies it.
type DeploymentActions interface {
	Redeploy(ctx context.Context, userID int64, id string) (*projects.Deployment, error)
	Promote(ctx context.Context, userID int64, id string) (*projects.Deployment, error)
}

var _ DeploymentActions = (*projects.Service)(nil)

// CheckRunHandler carries out the buttons of Ferry's check runs: "Redeploy" and "Promote to production"
// (requested_action), and GitHub's own "Re-run" (rerequested), which redeploys.
//
// Who may press them: GitHub lets anyone with write access to the repository press a check run's button, which
// is not the same set of people as those who may deploy on Ferry. So the sender must be a Ferry user linked to
// that GitHub account (by GitHub sign-in), and the action goes through the projects service as that user: the
// same checks as the dashboard's buttons (the project is theirs or reached through their installations, and
// not being deleted). Anyone else is refused with a log line and nothing changes.
//
// The action runs in the request, after every check: it is not part of the intake transaction (a promotion
// is a storage write), so the handler does it last. If the delivery row then fails to commit, a redelivery
// repeats it: a second redeploy, or a promotion answered "already in production".
type CheckRunHandler struct {
	// Actions carries the actions out; nil ignores every check_run event.
	Actions DeploymentActions
}

var _ EventHandler = CheckRunHandler{}

// Handles names the event.
func (CheckRunHandler) Handles() []string { return []string{"check_run"} }

// Handle acts on requested_action and rerequested; created and completed (GitHub echoing Ferry's own calls)
// are ignored.
func (h CheckRunHandler) Handle(ctx context.Context, d *Delivery) (string, error) {
	ev, ok := d.Payload.(*github.CheckRunEvent)
	if !ok {
		return "", payloadError("check_run event of an unexpected type")
	}
	cr := ev.GetCheckRun()
	log := d.Log.With("check_run", cr.GetID(), "repository", ev.GetRepo().GetFullName(), "sender", ev.GetSender().GetLogin())
	var action string
	switch ev.GetAction() {
	case "requested_action":
		action = ev.GetRequestedAction().Identifier
	case "rerequested":
		action = ghreport.ActionRedeploy
	default:
		return OutcomeIgnored, nil
	}
	if action != ghreport.ActionRedeploy && action != ghreport.ActionPromote {
		log.InfoContext(ctx, "check run action Ferry does not offer, ignored", "identifier", action)
		return OutcomeIgnored, nil
	}
	if h.Actions == nil {
		log.WarnContext(ctx, "check run action ignored: this server has no projects service")
		return OutcomeIgnored, nil
	}
	if cr.GetID() == 0 || ev.GetRepo().GetID() == 0 {
		return "", payloadError("check_run event without check_run.id or repository.id")
	}
	dep, err := d.Store.DeploymentGetByCheckRun(ctx, cr.GetID())
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		log.InfoContext(ctx, "check run action for a check run Ferry does not know, ignored")
		return OutcomeIgnored, nil
	}
	if err != nil {
		return "", err
	}
	p, err := d.Store.ProjectGetByID(ctx, dep.ProjectID)
	if err != nil {
		return "", err
	}
	if p.GitHubRepoID != ev.GetRepo().GetID() {
		log.WarnContext(ctx, "check run action from another repository than the deployment's, refused", "deployment", dep.ID)
		return OutcomeIgnored, nil
	}
	log = log.With("project", p.Name, "deployment", dep.ID, "action", action)
	u, err := d.Store.UserGetByGitHubID(ctx, ev.GetSender().GetID())
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		log.WarnContext(ctx, "check run action refused: the sender has no Ferry account linked to their GitHub account (sign in to Ferry with GitHub once)")
		return OutcomeIgnored, nil
	}
	if err != nil {
		return "", err
	}
	var res *projects.Deployment
	if action == ghreport.ActionPromote {
		res, err = h.Actions.Promote(ctx, u.ID, dep.ID)
	} else {
		res, err = h.Actions.Redeploy(ctx, u.ID, dep.ID)
	}
	switch code := ferry.ErrorCode(err); {
	case err == nil:
		log.InfoContext(ctx, "check run action done", "user", u.ID, "result", res.ID)
		return OutcomeAccepted, nil
	case code == ferry.ENOTFOUND || code == ferry.EFORBIDDEN || code == ferry.EUNAUTHORIZED:
		log.WarnContext(ctx, "check run action refused: the sender's Ferry account cannot change this project", "user", u.ID)
		return OutcomeIgnored, nil
	case code == ferry.ECONFLICT || code == ferry.EINVALID:
		log.InfoContext(ctx, "check run action not possible now", "user", u.ID, "err", err)
		return OutcomeIgnored, nil
	}
	return "", err
}
