package store

import "context"

// DeploymentSupersedeForHeadParams names the deployment of the commit GitHub says its branch or pull request
// points at now (Head), and its line, as DeploymentSupersedeParams does.
type DeploymentSupersedeForHeadParams struct {
	NewID     string
	ProjectID int64
	PRNumber  int
	Ref       string
	// Head is the commit the branch or pull request points at on GitHub; NewID's commit must be it.
	Head string
}

// DeploymentSupersedeForHead cancels the unfinished deployments of NewID's line that build another commit than
// Head, whatever order their webhooks arrived in, and those of Head itself that are older than NewID, and
// records NewID as their superseded_by. It is DeploymentSupersede for a caller that asked GitHub which commit
// is newest: arrival order says nothing when deliveries come out of order (issue 15), and a build of an older
// commit ends stale at its head check anyway. A NewID that is not itself unfinished, or not of Head,
// supersedes nothing.
func (s *Store) DeploymentSupersedeForHead(ctx context.Context, p DeploymentSupersedeForHeadParams) ([]*Deployment, error) {
	ds, err := collectDeployments(s.db.Query(ctx, `
		UPDATE deployments SET status = 'canceled', superseded_by = $1, error = 'superseded by ' || $1,
			finished_at = now(), updated_at = now()
		WHERE project_id = $2 AND status IN ('queued', 'building') AND id <> $1
			AND CASE WHEN $3 <> 0 THEN pr_number = $3 ELSE pr_number IS NULL AND ref = $4 END
			AND EXISTS (SELECT 1 FROM deployments n WHERE n.id = $1 AND n.commit_sha = $5
			            AND n.status IN ('queued', 'building'))
			AND (commit_sha <> $5 OR (created_at, id) < (SELECT created_at, id FROM deployments WHERE id = $1))
		RETURNING `+deploymentColumns,
		p.NewID, p.ProjectID, p.PRNumber, p.Ref, p.Head))
	if err != nil {
		return nil, dbError("supersede deployments for the head commit", err)
	}
	return ds, nil
}
