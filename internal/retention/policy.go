// Package retention decides what Ferry may forget and forgets it: old deployments, the blobs only they named,
// dependency caches and stale previews. One collector serves the App's periodic job and `ferry gc`, so a site
// published without a server is collected by the same rules. Its safety argument is in docs/architecture.md
// ("Retention and garbage collection").
package retention

import (
	"fmt"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Policy is how long a project keeps what. A zero field takes the server's default (Defaults, or what the
// operator set); a project stores only the fields its owner changed. It is kept in the project's settings
// (`"retention"`), sent by the API and the dashboard, and read by `ferry gc` from flags.
type Policy struct {
	// RollbackWindow is how many production deployments stay for rollback besides the one in production: the
	// newest ones, and as many again before the current one after a rollback. Default 10.
	RollbackWindow int `json:"rollbackWindow,omitempty"`
	// MinAgeHours: nothing younger is deleted, whatever else the policy says. Default 24.
	MinAgeHours int `json:"minAgeHours,omitempty"`
	// PreviewGraceDays is how long a preview deployment that no alias points at (its pull request closed, its
	// branch deleted or pushed again, its alias retired) stays before it is deleted. Default 7.
	PreviewGraceDays int `json:"previewGraceDays,omitempty"`
	// StaleAfterDays retires a preview alias (pr-<n>, git-<branch>) nobody has pushed to for this long: the
	// alias is removed, so its deployment enters the grace period; a new push brings it back. -1: never.
	// Default 30. Production and aliases a custom domain serves are never retired.
	StaleAfterDays int `json:"staleAfterDays,omitempty"`
	// CacheMaxAgeDays evicts dependency caches saved longer ago. Default 30.
	CacheMaxAgeDays int `json:"cacheMaxAgeDays,omitempty"`
	// CacheMaxMB bounds a project's dependency caches together; the oldest go first. Default 5120 (5 GiB).
	CacheMaxMB int64 `json:"cacheMaxMB,omitempty"`
	// LogRetentionDays is how long the App keeps build logs (deployment_logs). Default 30.
	LogRetentionDays int `json:"logRetentionDays,omitempty"`
}

// Defaults are Ferry's built-in defaults, used by `ferry app`, `ferry dev` and `ferry gc` alike.
var Defaults = Policy{
	RollbackWindow:   10,
	MinAgeHours:      24,
	PreviewGraceDays: 7,
	StaleAfterDays:   30,
	CacheMaxAgeDays:  30,
	CacheMaxMB:       5120,
	LogRetentionDays: 30,
}

// Over returns p with its zero fields taken from def.
func (p Policy) Over(def Policy) Policy {
	pick := func(v, d int) int {
		if v == 0 {
			return d
		}
		return v
	}
	p.RollbackWindow = pick(p.RollbackWindow, def.RollbackWindow)
	p.MinAgeHours = pick(p.MinAgeHours, def.MinAgeHours)
	p.PreviewGraceDays = pick(p.PreviewGraceDays, def.PreviewGraceDays)
	p.StaleAfterDays = pick(p.StaleAfterDays, def.StaleAfterDays)
	p.CacheMaxAgeDays = pick(p.CacheMaxAgeDays, def.CacheMaxAgeDays)
	p.LogRetentionDays = pick(p.LogRetentionDays, def.LogRetentionDays)
	if p.CacheMaxMB == 0 {
		p.CacheMaxMB = def.CacheMaxMB
	}
	return p
}

// Validate refuses values that would make the policy delete more than its owner can mean: a rollback window
// under 1, a minimum age under an hour (a publish in flight must stay safe even from an operator's typo).
func (p Policy) Validate() error {
	bad := func(field string, v any, rule string) error {
		return ferry.Errorf(ferry.EINVALID, "retention %s = %v: %s (0 takes the default)", field, v, rule)
	}
	switch {
	case p.RollbackWindow < 0 || p.RollbackWindow > 1000:
		return bad("rollbackWindow", p.RollbackWindow, "must be 1 to 1000")
	case p.MinAgeHours < 0 || p.MinAgeHours > 24*3650:
		return bad("minAgeHours", p.MinAgeHours, "must be at least 1 hour")
	case p.PreviewGraceDays < 0 || p.PreviewGraceDays > 3650:
		return bad("previewGraceDays", p.PreviewGraceDays, "must be 1 to 3650 days")
	case p.StaleAfterDays < -1 || p.StaleAfterDays > 3650:
		return bad("staleAfterDays", p.StaleAfterDays, "must be 1 to 3650 days, or -1 for never")
	case p.CacheMaxAgeDays < 0 || p.CacheMaxAgeDays > 3650:
		return bad("cacheMaxAgeDays", p.CacheMaxAgeDays, "must be 1 to 3650 days")
	case p.CacheMaxMB < 0:
		return bad("cacheMaxMB", p.CacheMaxMB, "must be positive")
	case p.LogRetentionDays < 0 || p.LogRetentionDays > 3650:
		return bad("logRetentionDays", p.LogRetentionDays, "must be 1 to 3650 days")
	}
	return nil
}

// String is the policy in one line, for logs and `ferry gc`.
func (p Policy) String() string {
	stale := fmt.Sprintf("%dd", p.StaleAfterDays)
	if p.StaleAfterDays < 0 {
		stale = "never"
	}
	return fmt.Sprintf("rollback window %d, min age %dh, preview grace %dd, stale after %s, caches %dd/%d MB, logs %dd",
		p.RollbackWindow, p.MinAgeHours, p.PreviewGraceDays, stale, p.CacheMaxAgeDays, p.CacheMaxMB, p.LogRetentionDays)
}

func (p Policy) minAge() time.Duration   { return time.Duration(p.MinAgeHours) * time.Hour }
func (p Policy) grace() time.Duration    { return days(p.PreviewGraceDays) }
func (p Policy) cacheAge() time.Duration { return days(p.CacheMaxAgeDays) }

// LogRetention is how long build logs are kept.
func (p Policy) LogRetention() time.Duration { return days(p.LogRetentionDays) }

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }
