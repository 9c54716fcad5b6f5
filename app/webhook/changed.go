package webhook

import (
	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/app/jobs"
)

// maxPushCommits is how many commits a push payload lists at most; a push with more is truncated and says
// nothing of the rest's files.
const maxPushCommits = 20

// pushTouches reports whether a push changed anything under root (a repository-relative folder; "" or "."
// is the whole repository), from the added, modified and removed lists of its commits. known is false when the
// payload cannot tell (a truncated push of 20 or more commits, or a commit without file lists: GitHub leaves
// them out past 3000 files); then touched is true and the build asks the compare API.
func pushTouches(ev *github.PushEvent, root string) (touched, known bool) {
	if jobs.CleanRoot(root) == "" {
		return true, true
	}
	if len(ev.Commits) == 0 || len(ev.Commits) >= maxPushCommits {
		return true, false
	}
	var files []string
	for _, c := range ev.Commits {
		if len(c.Added)+len(c.Modified)+len(c.Removed) == 0 {
			return true, false // an empty commit lists nothing, and a huge one has its lists cut
		}
		files = append(append(append(files, c.Added...), c.Modified...), c.Removed...)
	}
	return jobs.Touches(files, root), true
}
