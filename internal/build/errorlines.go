package build

import (
	"regexp"
	"strings"

	"github.com/ferryhq/ferry/internal/ansi"
)

// maxErrorLines bounds the lines ErrorLines picks: enough for a tool's "what" and "where", short enough for a
// red box and a GitHub status.
const maxErrorLines = 4

var (
	// errorLineRe recognises lines in which a tool states a failure.
	errorLineRe = regexp.MustCompile(`(?i)\berror\b|\berr!|\bfailed\b|\bfailure\b|\bunexpected\b|\bcannot\b|\bcan't\b|` +
		`\bcould not\b|\bnot found\b|\bno such file\b|\bmissing\b|\binvalid\b|\bsyntaxerror\b|\btypeerror\b|\bpanic\b|` +
		`^(✗|✘|×|x) |^\[[a-z0-9:_/-]+\] `)
	// locationRe finds a file and line (and column) as tools print them: path/file.ext:12:3 or file.ext (12:3).
	locationRe = regexp.MustCompile(`[\w@.~/\\-]*[\w-]\.[a-zA-Z]{1,6}(:\d+(:\d+)?| \(\d+:\d+\))`)
	// noiseRe is what follows an error without saying anything about it: stack frames, code frames, npm's
	// own epilogue about the script that failed.
	noiseRe = regexp.MustCompile(`(?i)^at |^\d+\s*[|│]|^[|│╭╰─┬┴┆ ]+$|^[|│]\s|` +
		`^npm (error|err!) (code|path|command|workspace|location|lifecycle|errno|signal|syscall|a complete log|` +
		`failed while executing|clean install|usage|options:|aliases:|run "npm help|\s*$)|^npm (error|err!)  |^npm (error|err!)\s*$|^error: script "[^"]*" exited|^elifecycle|command failed with exit code|` +
		`^node:internal|^error during build:?$|^build failed (in |with \d+ errors?:?$)|^(✗|✘|×) build failed`)
)

// ErrorLines picks, from the last lines of a failed command's output, the lines that say what went wrong: the
// last ones that look like errors, without colours, stack frames, code frames or npm's epilogue, plus the
// first file:line the tool printed near them when they name none. Nothing looks like an error: the last
// lines that are not noise. The last line of output alone is often a closing brace of a code frame or a stack
// frame (issue 18), which is why the summary is never just that.
func ErrorLines(tail []string) []string {
	clean := make([]string, 0, len(tail))
	for _, l := range tail {
		if s := strings.TrimSpace(ansi.Strip(l)); s != "" {
			clean = append(clean, s)
		}
	}
	var picked []int
	for i := len(clean) - 1; i >= 0 && len(picked) < maxErrorLines; i-- {
		if !noiseRe.MatchString(clean[i]) && errorLineRe.MatchString(clean[i]) {
			picked = append(picked, i)
		}
	}
	if len(picked) == 0 {
		for i := len(clean) - 1; i >= 0 && len(picked) < 2; i-- {
			if !noiseRe.MatchString(clean[i]) {
				picked = append(picked, i)
			}
		}
	}
	if len(picked) == 0 {
		return nil
	}
	// Back to output order, the same line once.
	out := make([]string, 0, len(picked)+1)
	seen := map[string]bool{}
	hasLoc := false
	for j := len(picked) - 1; j >= 0; j-- {
		s := clean[picked[j]]
		if seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
		hasLoc = hasLoc || locationRe.MatchString(s)
	}
	if !hasLoc {
		// A location after the first picked line: a code frame's header (╭─[ src/App.jsx:3:2 ]), "file: ...".
		for i := picked[len(picked)-1]; i < len(clean); i++ {
			if loc := locationRe.FindString(clean[i]); loc != "" && !strings.HasPrefix(clean[i], "at ") && !strings.Contains(loc, "node_modules") {
				out = append(out, "at "+loc)
				break
			}
		}
	}
	return out
}
