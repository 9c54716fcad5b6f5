package ghreport

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ansi"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Check run statuses and conclusions GitHub accepts.
const (
	CheckQueued     = "queued"
	CheckInProgress = "in_progress"
	CheckCompleted  = "completed"

	ConclusionSuccess   = "success"
	ConclusionFailure   = "failure"
	ConclusionCancelled = "cancelled"
	ConclusionSkipped   = "skipped"
	ConclusionNeutral   = "neutral"
)

// Requested-action identifiers: the buttons a check run offers, which come back in the check_run webhook's
// requested_action.identifier.
const (
	ActionRedeploy = "redeploy"
	ActionPromote  = "promote"
)

// GitHub's limits on a check run's output and actions.
const (
	MaxCheckOutput     = 65535 // summary and text, in characters
	maxCheckTitle      = 255
	maxActionLabel     = 20
	maxActionDesc      = 40
	maxActions         = 3
	checkRunNamePrefix = "ferry/"
)

// CheckRunAction is one requested-action button.
type CheckRunAction struct {
	Label, Description, Identifier string
}

// RedeployAction and PromoteAction are the buttons Ferry offers.
var (
	RedeployAction = CheckRunAction{Label: "Redeploy", Description: "Build this commit again", Identifier: ActionRedeploy}
	PromoteAction  = CheckRunAction{Label: "Promote to production", Description: "Point production at this preview", Identifier: ActionPromote}
)

// CheckRunParams is the ferry/<project> check run of one commit, created or updated.
type CheckRunParams struct {
	Owner, Repo, SHA string
	// Project names the check: "ferry/<project>", the same context the commit status has.
	Project string
	// CheckRunID updates that check run; 0 creates one.
	CheckRunID int64
	// DeploymentID is sent as external_id, so that a requested action names what to act on.
	DeploymentID string
	// Status is CheckQueued, CheckInProgress or CheckCompleted; Conclusion is required with CheckCompleted.
	Status, Conclusion string
	// Title, Summary (markdown) and Text (markdown, for the log's tail) are the output; each is cut to GitHub's
	// limits.
	Title, Summary, Text string
	DetailsURL           string
	Actions              []CheckRunAction
}

var checkConclusions = map[string]bool{ConclusionSuccess: true, ConclusionFailure: true, ConclusionCancelled: true,
	ConclusionSkipped: true, ConclusionNeutral: true}

// CheckRunUpsert creates or updates a check run and returns its id. A token without `checks: write` (an
// Action's GITHUB_TOKEN by default) gets EFORBIDDEN: callers decide whether that is worth more than a log line.
func (r *Reporter) CheckRunUpsert(ctx context.Context, p CheckRunParams) (int64, error) {
	if p.Owner == "" || p.Repo == "" || p.Project == "" || (p.CheckRunID == 0 && p.SHA == "") {
		return 0, ferry.Errorf(ferry.EINVALID, "check run: owner, repo, project and (to create one) sha are required")
	}
	switch p.Status {
	case CheckQueued, CheckInProgress:
		if p.Conclusion != "" {
			return 0, ferry.Errorf(ferry.EINVALID, "check run: a conclusion goes with status completed only")
		}
	case CheckCompleted:
		if !checkConclusions[p.Conclusion] {
			return 0, ferry.Errorf(ferry.EINVALID, "check run: conclusion %q is not one of success, failure, cancelled, skipped, neutral", p.Conclusion)
		}
	default:
		return 0, ferry.Errorf(ferry.EINVALID, "check run: status %q is not one of queued, in_progress, completed", p.Status)
	}
	name := checkRunNamePrefix + p.Project
	var out *github.CheckRunOutput
	if p.Title != "" || p.Summary != "" {
		title := p.Title
		if title == "" {
			title = name
		}
		out = &github.CheckRunOutput{Title: github.String(truncate(title, maxCheckTitle)),
			Summary: github.String(cutRunes(p.Summary, MaxCheckOutput))}
		if p.Text != "" {
			out.Text = github.String(truncateHead(p.Text, MaxCheckOutput))
		}
	}
	var actions []*github.CheckRunAction
	for i, a := range p.Actions {
		if i == maxActions {
			break
		}
		actions = append(actions, &github.CheckRunAction{Label: truncate(a.Label, maxActionLabel),
			Description: truncate(a.Description, maxActionDesc), Identifier: a.Identifier})
	}
	if actions == nil {
		actions = []*github.CheckRunAction{} // an update without actions removes the old buttons
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return github.String(s)
	}
	var completed *github.Timestamp
	if p.Status == CheckCompleted {
		completed = &github.Timestamp{Time: time.Now().UTC().Truncate(time.Second)}
	}
	id := p.CheckRunID
	err := r.retry(ctx, "report the GitHub check run", permChecks, func(ctx context.Context) error {
		if id == 0 {
			cr, _, err := r.client.Checks.CreateCheckRun(ctx, p.Owner, p.Repo, github.CreateCheckRunOptions{
				Name: name, HeadSHA: p.SHA, DetailsURL: str(p.DetailsURL), ExternalID: str(p.DeploymentID),
				Status: github.String(p.Status), Conclusion: str(p.Conclusion), CompletedAt: completed,
				Output: out, Actions: actions,
			})
			if err != nil {
				return err
			}
			id = cr.GetID()
			return nil
		}
		_, _, err := r.client.Checks.UpdateCheckRun(ctx, p.Owner, p.Repo, id, github.UpdateCheckRunOptions{
			Name: name, DetailsURL: str(p.DetailsURL), ExternalID: str(p.DeploymentID),
			Status: github.String(p.Status), Conclusion: str(p.Conclusion), CompletedAt: completed,
			Output: out, Actions: actions,
		})
		return err
	})
	return id, err
}

// StripANSI removes terminal escape sequences (npm's and bundlers' colours), which GitHub shows as garbage,
// through the one stripper (internal/ansi), and any control byte left over (a carriage return).
func StripANSI(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	s = ansi.Strip(s)
	return strings.Map(func(r rune) rune {
		if isControl(r) {
			return -1
		}
		return r
	}, s)
}

// isControl is a C0 control character or DEL other than tab and newline.
func isControl(r rune) bool { return (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f }

// LogBlock renders log lines as a fenced block for a check run's text, escapes and control bytes stripped,
// keeping the LAST lines when they do not fit: the end of a log is where a build says why it failed. The fence
// is longer than any run of backticks in the lines (CommonMark), so that no log can close it early.
func LogBlock(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(StripANSI(l))
		b.WriteByte('\n')
	}
	body := b.String()
	fence := strings.Repeat("`", max(3, longestRun(body, '`')+1))
	open := fence + "text\n"
	body = truncateHead(body, MaxCheckOutput-len(open)-len(fence))
	return open + body + fence
}

// longestRun is the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// truncateHead keeps the last max characters of s, starting at a line when it can.
func truncateHead(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	s = string(r[len(r)-max:])
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return s
}

// cutRunes keeps the first max characters of s, its line breaks included (truncate folds whitespace, which
// would flatten markdown).
func cutRunes(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
