package web

import (
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/internal/ansi"
	"github.com/ferryhq/ferry/internal/site"
)

// logStep is one step of a build log as the deployment page draws it: a collapsible group with its duration.
type logStep struct {
	Name     string
	Duration string
	Lines    []logLine
	Failed   bool // holds an error line: drawn open and marked
}

// logLine is one line of the log; Error marks the lines the deployment's error names, and First the first of
// them, which the page opens at (issue 18).
type logLine struct {
	projects.LogLine
	Error, First bool
}

// buildLog groups lines by step, in order, and marks the error lines: the lines of the deployment's error
// message after its first (build.ErrorLines picked them from the output, without colours), found again in
// the output. It returns the steps and the whole log's duration ("" with fewer than two timed lines).
func buildLog(lines []projects.LogLine, depError string) ([]logStep, string) {
	want := map[string]bool{}
	var locs []string
	for i, l := range strings.Split(depError, "\n") {
		l = strings.TrimSpace(l)
		if i == 0 || l == "" {
			continue
		}
		if loc, ok := strings.CutPrefix(l, "at "); ok {
			locs = append(locs, loc)
			continue
		}
		want[l] = true
	}
	var steps []logStep
	marked := false
	for _, l := range lines {
		step := l.Step
		if step == "" {
			step = "ferry"
		}
		if len(steps) == 0 || steps[len(steps)-1].Name != step {
			steps = append(steps, logStep{Name: step})
		}
		s := &steps[len(steps)-1]
		text := strings.TrimSpace(ansi.Strip(l.Line))
		isErr := want[text]
		for _, loc := range locs {
			isErr = isErr || (!strings.HasPrefix(text, "at ") && strings.Contains(text, loc))
		}
		if !isErr && depError != "" && strings.HasPrefix(strings.ToLower(text), "build failed") {
			isErr = true
		}
		ll := logLine{LogLine: l, Error: isErr, First: isErr && !marked}
		marked = marked || isErr
		s.Failed = s.Failed || isErr
		s.Lines = append(s.Lines, ll)
	}
	for i := range steps {
		start := steps[i].Lines[0].Time
		end := steps[i].Lines[len(steps[i].Lines)-1].Time
		if i+1 < len(steps) {
			end = steps[i+1].Lines[0].Time
		}
		if steps[i].Name != "ferry" { // Ferry's own lines (ready, rolled back) are events, not a step that ran
			steps[i].Duration = span(start, end)
		}
	}
	total := ""
	if len(lines) > 1 {
		total = span(lines[0].Time, lines[len(lines)-1].Time)
	}
	return steps, total
}

// span is the time from start to end for people, "" when either is unknown.
func span(start, end time.Time) string {
	if start.IsZero() || end.IsZero() || end.Before(start) {
		return ""
	}
	return site.HumanDuration(end.Sub(start))
}
