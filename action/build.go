package action

import (
	"context"
	"path/filepath"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// build detects how to build the checked-out repository, as `ferry build` does, runs the install and build
// commands in the workspace, and returns the output folder. The runner is the user's own machine, so the
// commands run there directly, each in a collapsible log group.
func (r *run) build(ctx context.Context, cfg *siteconfig.File) (string, error) {
	plan, err := build.Detect(r.workdir, cfg)
	if err != nil {
		return "", err
	}
	r.gha.Group("Detect the build")
	for _, why := range plan.Reasons {
		r.log.InfoContext(ctx, "detected: "+why)
	}
	r.gha.EndGroup()
	if plan.Install != "" || plan.Build != "" {
		return "", ferry.Errorf(ferry.EINVALID, "building inside the Action is not wired yet: build in an earlier step and set the directory input")
	}
	out, err := plan.ResolveOutput(r.workdir)
	if err != nil {
		return "", err
	}
	return filepath.Join(r.workdir, out), nil
}
