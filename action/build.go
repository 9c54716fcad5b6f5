package action

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// buildAndPublishRepo builds the checked-out repository through the build runner, as `ferry build` does
// (ferry.json, then detection), and publishes the output. The runner is the user's own machine and the code is
// the user's own, so the commands run without bubblewrap, which a Docker action's container could not start
// anyway. The log is split into one collapsible group per step.
func (r *run) buildAndPublishRepo(ctx context.Context, id string, meta map[string]string) (*site.PublishResult, error) {
	for name, v := range map[string]string{"build-command": r.in.BuildCommand, "install-command": r.in.InstallCommand, "root-directory": r.in.RootDirectory} {
		if v != "" {
			return nil, ferry.Errorf(ferry.EINVALID, "input %s is not supported yet when Ferry builds: put it in ferry.json (%s) or build in an earlier step and set directory", name, configKey[name])
		}
	}
	tmp, err := os.MkdirTemp("", "ferry-action-")
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "create a temporary folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	repo, err := repoForBuild(r.workdir, tmp)
	if err != nil {
		return nil, ferry.Wrap(ferry.EINTERNAL, err)
	}
	groups := &stepGroups{w: r.opts.Stdout}
	defer groups.close()
	log := slog.New(&groupHandler{inner: r.log.Handler(), groups: groups})
	res, err := build.Run(ctx, build.Params{
		Repo:         repo,
		Project:      r.project,
		Storage:      r.store.Storage,
		Aliases:      r.aliases,
		DeploymentID: id,
		Domain:       r.in.Domain,
		Sandbox:      build.SandboxNone,
		Meta:         meta,
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	return res.PublishResult, nil
}

// configKey names the ferry.json key that does what an input does.
var configKey = map[string]string{"build-command": "buildCommand", "install-command": "installCommand", "root-directory": "rootDirectory"}

// stepGroups writes ::group::/::endgroup:: around each build step's lines. The build runner tags every line
// with its step, so a new step value closes the previous group and opens the next.
type stepGroups struct {
	mu      sync.Mutex
	w       io.Writer
	current string
}

func (g *stepGroups) enter(step string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if step == g.current {
		return
	}
	if g.current != "" {
		io.WriteString(g.w, "::endgroup::\n")
	}
	g.current = step
	if step != "" {
		io.WriteString(g.w, "::group::"+step+"\n")
	}
}

func (g *stepGroups) close() { g.enter("") }

// groupHandler is a slog.Handler that opens the group of a record's "step" before passing it on.
type groupHandler struct {
	inner  slog.Handler
	groups *stepGroups
	step   string
}

func (h *groupHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *groupHandler) Handle(ctx context.Context, rec slog.Record) error {
	step := h.step
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "step" {
			step = a.Value.String()
		}
		return true
	})
	if step != "" {
		h.groups.enter(step)
	}
	return h.inner.Handle(ctx, rec)
}

func (h *groupHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "step" {
			c.step = a.Value.String()
		}
	}
	c.inner = h.inner.WithAttrs(attrs)
	return &c
}

func (h *groupHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
