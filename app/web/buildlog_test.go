package web

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry/app/projects"
)

// TestBuildLog: lines group by step with durations, and the lines that the deployment's error names are
// marked, the first of them once.
func TestBuildLog(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	lines := []projects.LogLine{
		{Seq: 1, Time: at(0), Step: "clone", Line: "fetching"},
		{Seq: 2, Time: at(1.5), Step: "build", Line: "$ npm run build"},
		{Seq: 3, Time: at(2), Step: "build", Line: "\x1b[31m[builtin:vite-transform] Error:\x1b[0m Unexpected token"},
		{Seq: 4, Time: at(2), Step: "build", Line: "   ╭─[ src/App.jsx:3:3 ]"},
		{Seq: 5, Time: at(2), Step: "build", Line: "    at frame (src/App.jsx:3:3)"},
		{Seq: 6, Time: at(3), Step: "ferry", Line: "build failed: step build exited with code 1:"},
	}
	steps, total := buildLog(lines, "build failed: step build exited with code 1:\n    [builtin:vite-transform] Error: Unexpected token\n    at src/App.jsx:3:3")
	if len(steps) != 3 || steps[0].Name != "clone" || steps[0].Duration != "1.5 s" || steps[1].Duration != "1.5 s" || steps[2].Duration != "" || total != "3.0 s" {
		t.Fatalf("steps %+v total %q", steps, total)
	}
	b := steps[1]
	if !b.Failed || steps[0].Failed || !b.Lines[1].Error || !b.Lines[1].First || !b.Lines[2].Error || b.Lines[2].First || b.Lines[3].Error || b.Lines[0].Error {
		t.Errorf("marks: %+v", b.Lines)
	}
	if steps, _ := buildLog(lines, ""); steps[1].Failed || steps[2].Failed {
		t.Error("a log without an error has marked lines")
	}
}
