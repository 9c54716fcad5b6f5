package ghreport

import (
	"context"

	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// maxCompareFiles is how many files GitHub's compare lists at most; a comparison with that many may have more.
const maxCompareFiles = 300

// ChangedFiles lists the files that differ between two commits (GET /repos/{owner}/{repo}/compare/{base}...{head}),
// for a push whose payload was truncated. complete is false when GitHub's list may be cut (300 files), so that
// a caller deciding "nothing changed" builds anyway.
func (r *Reporter) ChangedFiles(ctx context.Context, owner, repo, base, head string) (files []string, complete bool, err error) {
	if owner == "" || repo == "" || base == "" || head == "" {
		return nil, false, ferry.Errorf(ferry.EINVALID, "compare commits: owner, repo, base and head are required")
	}
	var cmp *github.CommitsComparison
	err = r.retry(ctx, "compare commits", permNone, func(ctx context.Context) error {
		var err error
		cmp, _, err = r.client.Repositories.CompareCommits(ctx, owner, repo, base, head, &github.ListOptions{PerPage: 100})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	for _, f := range cmp.Files {
		files = append(files, f.GetFilename())
		if f.GetPreviousFilename() != "" {
			files = append(files, f.GetPreviousFilename()) // a rename touches both folders
		}
	}
	return files, len(cmp.Files) < maxCompareFiles, nil
}
