package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// DeploymentCommitSeenParams asks whether a commit was deployed to a branch's or pull request's alias before.
type DeploymentCommitSeenParams struct {
	ProjectID int64
	Alias     string
	CommitSHA string
	PRNumber  int // 0 for a branch
}

// CommitSeen is what DeploymentCommitSeen found.
type CommitSeen int

// The answers of DeploymentCommitSeen.
const (
	CommitNew    CommitSeen = iota // no deployment of the alias has this commit
	CommitLatest                   // the alias's newest deployment is of this commit
	CommitOlder                    // an older deployment of the alias had it; newer ones followed
)

// DeploymentCommitSeen tells webhook intake whether a push's commit is already deployed (or queued) on its
// alias, or is older than what the alias has since had. A signed push body can be sent again under a new
// X-GitHub-Delivery id (that header is not signed); this is the check on what the signature does cover.
func (s *Store) DeploymentCommitSeen(ctx context.Context, p DeploymentCommitSeenParams) (CommitSeen, error) {
	var pr *int
	if p.PRNumber != 0 {
		pr = &p.PRNumber
	}
	var latest bool
	err := s.db.QueryRow(ctx, `
		SELECT d.id = (SELECT n.id FROM deployments n WHERE n.project_id = $1 AND n.alias = $2
		               AND n.pr_number IS NOT DISTINCT FROM $4::integer
		               ORDER BY n.created_at DESC, n.id DESC LIMIT 1)
		FROM deployments d
		WHERE d.project_id = $1 AND d.alias = $2 AND d.pr_number IS NOT DISTINCT FROM $4::integer AND d.commit_sha = $3
		ORDER BY d.created_at DESC, d.id DESC LIMIT 1`, p.ProjectID, p.Alias, p.CommitSHA, pr).Scan(&latest)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return CommitNew, nil
	case err != nil:
		return 0, dbError("look up the deployments of a commit", err)
	case latest:
		return CommitLatest, nil
	}
	return CommitOlder, nil
}
