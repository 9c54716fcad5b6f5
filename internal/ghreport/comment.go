package ghreport

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ansi"
)

// CommentMarker identifies Ferry's sticky PR comment. It is an HTML comment, so GitHub does not show it.
const CommentMarker = "<!-- ferry:preview -->"

// rowsPrefix opens the hidden JSON block that keeps every project's row, so that one project's update re-renders
// the others without parsing the Markdown table back.
const rowsPrefix = "<!-- ferry:rows "

// RowStatus is the plain word shown in a comment row.
type RowStatus string

// Row statuses, in the order a deployment meets them.
const (
	RowQueued   RowStatus = "Queued"
	RowBuilding RowStatus = "Building"
	RowReady    RowStatus = "Ready"
	RowFailed   RowStatus = "Failed"
	RowError    RowStatus = "Error"
	RowCanceled RowStatus = "Canceled"
	// RowRemoved: the PR was closed and its preview alias deleted.
	RowRemoved RowStatus = "Removed"
)

// CommentRow is one project's line in the sticky PR comment.
type CommentRow struct {
	// Project is the Ferry project name; rows are keyed and sorted by it.
	Project string    `json:"project"`
	Status  RowStatus `json:"status"`
	// URL is the preview alias URL (https://pr-4--site.example.com).
	URL string `json:"url,omitempty"`
	// DeploymentURL is the immutable URL of this very deployment.
	DeploymentURL string `json:"deployment_url,omitempty"`
	// LogURL links the status word to the build log, when set.
	LogURL string `json:"log_url,omitempty"`
	// Commit is the full head SHA; the table shows its first 7 characters.
	Commit string `json:"commit,omitempty"`
	// UpdatedAt is shown in UTC. Zero means now.
	UpdatedAt time.Time `json:"updated_at"`
}

type commentState struct {
	Rows []CommentRow `json:"rows"`
}

// parseCommentRows reads the rows back from a comment body that Ferry rendered. A body without the block, or
// with a damaged one, yields no rows: the comment is then rebuilt from the current row alone.
func parseCommentRows(body string) []CommentRow {
	i := strings.Index(body, rowsPrefix)
	if i < 0 {
		return nil
	}
	rest := body[i+len(rowsPrefix):]
	j := strings.Index(rest, " -->")
	if j < 0 {
		return nil
	}
	var st commentState
	if err := json.Unmarshal([]byte(rest[:j]), &st); err != nil {
		return nil
	}
	out := st.Rows[:0]
	for _, r := range st.Rows {
		if r.Project != "" {
			out = append(out, r)
		}
	}
	return out
}

// mergeRow replaces the row of row.Project (or adds it) and returns the rows sorted by project.
func mergeRow(rows []CommentRow, row CommentRow) []CommentRow {
	out := make([]CommentRow, 0, len(rows)+1)
	for _, r := range rows {
		if r.Project != row.Project {
			out = append(out, r)
		}
	}
	out = append(out, row)
	sort.Slice(out, func(i, j int) bool { return out[i].Project < out[j].Project })
	return out
}

// renderComment writes the whole comment: marker, table, hidden rows. encoding/json escapes '<' and '>', so the
// JSON can never close the HTML comment early.
func renderComment(rows []CommentRow) string {
	var b strings.Builder
	b.WriteString(CommentMarker + "\n")
	b.WriteString("**Ferry preview deployments**\n\n")
	b.WriteString("| Project | Status | Preview | Deployment | Commit | Updated (UTC) |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		status := cell(string(r.Status))
		if r.LogURL != "" {
			status = link(status, r.LogURL)
		}
		preview := "—"
		switch {
		case r.Status == RowRemoved:
			preview = "preview removed"
		case r.URL != "":
			preview = link(cell(hostOf(r.URL)), r.URL)
		}
		dep := "—"
		if r.DeploymentURL != "" && r.Status != RowRemoved {
			dep = link(cell(hostOf(r.DeploymentURL)), r.DeploymentURL)
		}
		commit := "—"
		if r.Commit != "" {
			commit = "`" + cell(shortSHA(r.Commit)) + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", cell(r.Project), status, preview, dep, commit,
			r.UpdatedAt.UTC().Format("2006-01-02 15:04"))
	}
	st, _ := json.Marshal(commentState{Rows: rows})
	b.WriteString("\n" + rowsPrefix + string(st) + " -->\n")
	return b.String()
}

// cell keeps user-influenced text from breaking the table or injecting Markdown.
func cell(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "[", `\[`, "]", `\]`, "`", "'", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

func link(text, url string) string {
	url = strings.NewReplacer(" ", "%20", ")", "%29", "|", "%7C", "\n", "", "<", "%3C", ">", "%3E").Replace(url)
	return "[" + text + "](" + url + ")"
}

func hostOf(u string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	return strings.TrimSuffix(s, "/")
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// truncate cuts s to at most n characters (runes), ending with an ellipsis when it cut: GitHub rejects longer
// deployment and commit status descriptions. Terminal colours go first: GitHub shows text, not escapes.
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(ansi.Strip(s)), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}
