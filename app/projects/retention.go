package projects

import (
	"context"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/retention"
)

// Retention is what a project's owner sees of the retention policy: the policy in force (the project's
// settings over the server's defaults) and the last collection's report (nil before the first).
type Retention struct {
	Policy retention.Policy  `json:"policy"`
	Last   *retention.Report `json:"last"`
}

// RetentionGet returns the project's policy in force and its last collection report, which says what it
// stores and what the policy removes next.
func (s *Service) RetentionGet(ctx context.Context, userID int64, name string) (*Retention, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	def := s.cfg.Retention
	if def == (retention.Policy{}) {
		def = retention.Defaults
	}
	out := &Retention{Policy: parseSettings(p.Settings).Retention.Over(def)}
	rep, err := retention.ReportGet(ctx, s.cfg.Site.Storage, p.Name)
	switch ferry.ErrorCode(err) {
	case "":
		out.Last = rep
	case ferry.ENOTFOUND:
	default:
		return nil, err
	}
	return out, nil
}
