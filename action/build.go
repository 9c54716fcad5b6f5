package action

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/ferryhq/ferry/internal/build"
	"github.com/ferryhq/ferry/internal/site"
	"github.com/ferryhq/ferry/internal/siteconfig"
)

// buildAndPublishRepo builds the checked-out repository through the build runner, as `ferry build` does
// (ferry.json, then detection), and publishes the output. The runner is the user's own machine and the code is
// the user's own, so the commands run without bubblewrap, which a Docker action's container could not start
// anyway. The build-command, install-command and root-directory inputs win over ferry.json. The checkout
// belongs to the runner's user while the action runs as root; the build runner's clone trusts that one
// repository for git. The log is split into one collapsible group per step.
func (r *run) buildAndPublishRepo(ctx context.Context, id string, meta map[string]string) (*site.PublishResult, error) {
	groups := &stepGroups{w: r.opts.Stdout}
	defer groups.close()
	log := slog.New(&groupHandler{inner: r.log.Handler(), groups: groups})
	res, err := build.Run(ctx, build.Params{
		Repo:         r.workdir,
		Overrides:    r.in.overrides(),
		Project:      r.project,
		Storage:      r.store.Storage,
		CacheScope:   r.cacheScope(),
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

// cacheScope is how far the run's commit is trusted (build.CacheScopeProduction): a pull request from a fork
// reads and writes no dependency cache, even when a workflow deploys it as production; a production deploy
// uses production's; anything else the previews'.
func (r *run) cacheScope() string {
	switch {
	case r.ev.Fork:
		return build.CacheScopeFork
	case r.prod:
		return build.CacheScopeProduction
	}
	return build.CacheScopePreview
}

// overrides are the inputs that win over the repository's ferry.json. An empty input is one the workflow
// did not set (action.yml's default), so it leaves ferry.json and detection alone.
func (in *Inputs) overrides() *siteconfig.File {
	o := &siteconfig.File{RootDirectory: in.RootDirectory}
	if in.BuildCommand != "" {
		o.BuildCommand = &in.BuildCommand
	}
	if in.InstallCommand != "" {
		o.InstallCommand = &in.InstallCommand
	}
	return o
}

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
