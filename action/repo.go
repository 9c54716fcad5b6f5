package action

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// repoForBuild returns a path to the checked-out repository that git will agree to fetch from. git refuses to
// read a repository owned by another user (safe.directory), and a Docker action runs as root over a workspace
// that the runner's user owns; the build runner's git deliberately ignores global config, so no exception can
// be configured. In that case the .git folder (small: actions/checkout fetches one commit by default) is copied
// into tmp, owned by us. Otherwise the workspace is used as it is.
func repoForBuild(workdir, tmp string) (string, error) {
	gitDir := filepath.Join(workdir, ".git")
	fi, err := os.Stat(gitDir)
	if err != nil || !fi.IsDir() {
		return workdir, nil // no checkout, or a worktree/submodule pointer: let the build runner report it
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) == os.Geteuid() {
		return workdir, nil
	}
	dst := filepath.Join(tmp, "repo.git")
	if err := copyTree(gitDir, dst); err != nil {
		return "", fmt.Errorf("copy the checkout's .git (owned by uid %d) for the build: %w", st.Uid, err)
	}
	return dst, nil
}

// copyTree copies regular files and folders; symbolic links inside .git are not followed or kept.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
