// Package jobs holds the River job kinds that connect webhook intake to the workers: intake inserts them in the
// same transaction that persists a delivery, and the workers in this package carry them out. The args types are a
// contract between the two halves of `ferry app`; their JSON is stored in river_job rows, so change them only
// additively.
package jobs

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// DeployArgs asks for one deployment (already stored with status queued) to be reported, built and published.
type DeployArgs struct {
	DeploymentID string `json:"deployment_id"`
}

// Kind is the River job kind.
func (DeployArgs) Kind() string { return "deploy" }

// PRCloseArgs asks for a closed pull request's previews to be retired: deployments inactive, alias removed,
// sticky comment updated.
type PRCloseArgs struct {
	ProjectID int64 `json:"project_id"`
	PRNumber  int   `json:"pr_number"`
}

// Kind is the River job kind.
func (PRCloseArgs) Kind() string { return "pr_close" }

// InsertDeploy enqueues the work for a new deployment inside tx, so that the deployment row and its jobs commit
// together. (The workers engineer owns this body: it may insert more than one job, e.g. a fast "report queued"
// job on its own queue.)
func InsertDeploy(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, deploymentID string) error {
	_, err := client.InsertTx(ctx, tx, DeployArgs{DeploymentID: deploymentID}, &river.InsertOpts{MaxAttempts: 3})
	return err
}

// InsertPRClose enqueues the clean-up of a closed pull request inside tx.
func InsertPRClose(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, projectID int64, pr int) error {
	_, err := client.InsertTx(ctx, tx, PRCloseArgs{ProjectID: projectID, PRNumber: pr}, &river.InsertOpts{MaxAttempts: 3})
	return err
}
