package webhook

import (
	"path"
	"strings"

	"github.com/google/go-github/v66/github"
)

// maxPushCommits is how many commits a push payload lists at most; a push with more is truncated and says
// nothing of the rest's files.
const maxPushCommits = 20

// pushTouches reports whether a push changed anything under root (a repository-relative folder; "" or "."
// is the whole repository), from the added, modified and removed lists of its commits. It answers true when it
// cannot tell: a truncated push (more than 20 commits), or a commit without file lists (GitHub leaves them out
// past 3000 files), so that a monorepo project never misses a change.
func pushTouches(ev *github.PushEvent, root string) bool {
	root = strings.Trim(path.Clean("/"+strings.TrimSpace(root)), "/")
	if root == "" {
		return true
	}
	if len(ev.Commits) == 0 || len(ev.Commits) >= maxPushCommits {
		return true
	}
	prefix := root + "/"
	for _, c := range ev.Commits {
		if len(c.Added)+len(c.Modified)+len(c.Removed) == 0 {
			return true // an empty commit lists nothing, and a huge one has its lists cut: build
		}
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				if f == root || strings.HasPrefix(f, prefix) {
					return true
				}
			}
		}
	}
	return false
}
