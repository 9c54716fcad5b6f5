package action

import (
	"fmt"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/site"
)

// outcome is what the run tells the workflow: the step outputs and the job summary.
type outcome struct {
	Project       string
	Deployment    string
	Aliases       []string
	URL           string // the first alias's URL
	DeploymentURL string
	Result        *site.PublishResult
	Cleanup       string // set instead of Result when a closed pull request was cleaned up
	ShareURL      string // a signed link to URL, when it is protected
}

// writeOutputs sets the outputs action.yml declares. Each is always set, empty when unknown, so that later
// steps can test for it.
func writeOutputs(gha *githubactions.Action, o *outcome) {
	gha.SetOutput("project", o.Project)
	gha.SetOutput("deployment-id", o.Deployment)
	gha.SetOutput("url", o.URL)
	gha.SetOutput("deployment-url", o.DeploymentURL)
	gha.SetOutput("share-url", o.ShareURL)
}

// summary renders the job summary in Markdown: what people look for first on the run's page.
func summary(o *outcome) string {
	var b strings.Builder
	b.WriteString("### Ferry\n\n")
	if o.Cleanup != "" {
		fmt.Fprintf(&b, "%s\n", o.Cleanup)
		return b.String()
	}
	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| Project | `%s` |\n", o.Project)
	if o.URL != "" {
		fmt.Fprintf(&b, "| Preview | [%s](%s) |\n", o.URL, o.URL)
	}
	if o.DeploymentURL != "" {
		fmt.Fprintf(&b, "| Deployment | [%s](%s) |\n", o.DeploymentURL, o.DeploymentURL)
	}
	fmt.Fprintf(&b, "| Deployment id | `%s` |\n", o.Deployment)
	if len(o.Aliases) > 0 {
		fmt.Fprintf(&b, "| Aliases | `%s` |\n", strings.Join(o.Aliases, "`, `"))
	}
	if r := o.Result; r != nil {
		fmt.Fprintf(&b, "| Files | %d (%s) |\n", r.Files, humanBytes(r.Bytes))
		fmt.Fprintf(&b, "| Uploaded | %d |\n", r.Uploaded)
		fmt.Fprintf(&b, "| Skipped (already stored) | %d |\n", r.Skipped)
	}
	return b.String()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
