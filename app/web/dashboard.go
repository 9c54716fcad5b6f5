package web

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/auth"
	"github.com/ferryhq/ferry/app/events"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/retention"
)

// DashboardConfig is what the dashboard pages run on.
type DashboardConfig struct {
	// Projects makes every change and every read of what a user may see. Required.
	Projects *projects.Service
	// Streams serves the live updates (Server-Sent Events). Required.
	Streams *events.Streams
	// Auth sets the one-time notices shown after a redirect ("Saved."). Required.
	Auth *auth.Auth
}

// Dashboard is the signed-in part of the web UI: projects, deployments and their settings. Every read and change
// goes through app/projects with the signed-in user's id, so another user's project is 404 like a missing one.
type Dashboard struct {
	svc     *projects.Service
	streams *events.Streams
	auth    *auth.Auth
}

// NewDashboard checks cfg and returns the dashboard.
func NewDashboard(cfg DashboardConfig) (*Dashboard, error) {
	if cfg.Projects == nil || cfg.Streams == nil || cfg.Auth == nil {
		return nil, errors.New("web: the dashboard needs Projects, Streams and Auth")
	}
	return &Dashboard{svc: cfg.Projects, streams: cfg.Streams, auth: cfg.Auth}, nil
}

// Routes mounts the dashboard's pages. They need auth.Middleware around the mux.
func (d *Dashboard) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", d.home)
	mux.HandleFunc("GET /projects", d.signedIn(d.projectsPage))
	mux.HandleFunc("GET /projects/new", d.signedIn(d.newProjectPage))
	mux.HandleFunc("POST /projects", d.signedIn(d.createProject))
	mux.HandleFunc("GET /projects/{name}", d.signedIn(d.projectPage))
	mux.HandleFunc("GET /projects/{name}/events", d.signedIn(d.projectEvents))
	mux.HandleFunc("GET /projects/{name}/live", d.signedIn(d.projectLive))
	mux.HandleFunc("POST /projects/{name}/deploy", d.signedIn(d.deployNow))
	mux.HandleFunc("GET /projects/{name}/settings", d.signedIn(d.settingsPage))
	mux.HandleFunc("POST /projects/{name}/settings", d.signedIn(d.saveSettings))
	mux.HandleFunc("POST /projects/{name}/protection", d.signedIn(d.saveProtection))
	mux.HandleFunc("POST /projects/{name}/share-links", d.signedIn(d.createShareLink))
	mux.HandleFunc("POST /projects/{name}/env", d.signedIn(d.setEnv))
	mux.HandleFunc("POST /projects/{name}/env/delete", d.signedIn(d.deleteEnv))
	mux.HandleFunc("POST /projects/{name}/delete", d.signedIn(d.deleteProject))
	mux.HandleFunc("GET /deployments/{id}", d.signedIn(d.deploymentPage))
	mux.HandleFunc("GET /deployments/{id}/events", d.signedIn(d.deploymentEvents))
	mux.HandleFunc("GET /deployments/{id}/actions", d.signedIn(d.deploymentLive))
	mux.HandleFunc("POST /deployments/{id}/{action}", d.signedIn(d.deploymentAction))
	d.domainRoutes(mux)
}

// userHandler is a handler for a signed-in user.
type userHandler func(w http.ResponseWriter, r *http.Request, u *store.User)

// signedIn sends anonymous browsers to the log-in page (and back here afterwards).
func (d *Dashboard) signedIn(h userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := auth.UserFrom(r.Context())
		if u == nil {
			if r.Method == http.MethodGet && !fetched(r.URL.Path) {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "Sign in first.", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, u)
	}
}

// fetched reports whether path is one that dashboard.js fetches (a stream or a fragment) rather than a page a
// person opens: those answer 401, since a redirect to the log-in page would only be swapped into the page.
func fetched(path string) bool {
	for _, suffix := range []string{"/events", "/live", "/actions"} {
		if strings.HasSuffix(path, suffix) {
			return true
		}
	}
	return false
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	if auth.UserFrom(r.Context()) == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/projects", http.StatusSeeOther)
}

// fail shows err on the error page: a missing project or deployment is 404 (another user's too), and a
// failure of ours is logged and shown generically (web.Error).
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) { Error(w, r, err) }

func (d *Dashboard) projectsPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	ps, err := d.svc.ProjectList(r.Context(), u.ID)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	// Each card shows its latest deployment, as people check it first: status, source, when, where.
	type card struct {
		*projects.Project
		Latest *projects.Deployment
	}
	cards := make([]card, 0, len(ps))
	for _, p := range ps {
		c := card{Project: p}
		if p.Deletion == nil {
			if list, err := d.svc.DeploymentList(r.Context(), u.ID, projects.DeploymentListParams{Project: p.Name, Limit: 1}); err == nil && len(list.Deployments) > 0 {
				c.Latest = list.Deployments[0]
			}
		}
		cards = append(cards, c)
	}
	Render(w, r, http.StatusOK, "projects", map[string]any{"Title": "Projects", "Projects": cards})
}

func (d *Dashboard) newProjectPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	Render(w, r, http.StatusOK, "project_new", map[string]any{"Title": "New project", "Branch": "main"})
}

// maxField bounds any one form field, so that a huge post is refused with a message rather than stored.
const maxField = 64 << 10

// form reads a posted form; a body over 1 MiB is ETOOLARGE.
func form(r *http.Request) error {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ferry.Errorf(ferry.ETOOLARGE, "the form is larger than 1 MiB")
		}
		return ferry.Errorf(ferry.EINVALID, "the form could not be read: %v", err)
	}
	for k, vs := range r.PostForm {
		for _, v := range vs {
			if len(v) > maxField {
				return ferry.Errorf(ferry.ETOOLARGE, "the field %s is longer than %d bytes", k, maxField)
			}
		}
	}
	return nil
}

func (d *Dashboard) createProject(w http.ResponseWriter, r *http.Request, u *store.User) {
	data := map[string]any{"Title": "New project"}
	err := form(r)
	if err == nil {
		data["GitURL"], data["Name"], data["Branch"] = r.PostFormValue("git_url"), r.PostFormValue("name"), r.PostFormValue("branch")
		var p *projects.Project
		p, err = d.svc.ProjectCreate(r.Context(), u.ID, projects.ProjectCreateParams{
			GitURL: r.PostFormValue("git_url"), Name: strings.TrimSpace(r.PostFormValue("name")),
			ProductionBranch: strings.TrimSpace(r.PostFormValue("branch")),
		})
		if err == nil {
			d.afterCreate(w, r, u, p)
			return
		}
	}
	status := ferry.HTTPStatus(err)
	if status >= 500 {
		d.fail(w, r, err)
		return
	}
	data["Error"] = ferry.ErrorMessage(err)
	Render(w, r, status, "project_new", data)
}

// afterCreate starts the first production build, so that pasting a URL is all it takes to see a site.
func (d *Dashboard) afterCreate(w http.ResponseWriter, r *http.Request, u *store.User, p *projects.Project) {
	if r.PostFormValue("deploy") != "no" {
		if _, err := d.svc.DeployNow(r.Context(), u.ID, p.Name, projects.DeployParams{}); err != nil {
			// The project exists; say why nothing builds.
			// In the error style (a "!" flash), never a green box (issue 18).
			d.auth.Flash(w, "!Project created, but its first build did not start: "+ferry.ErrorMessage(err)+
				" Fix the git URL in Settings, then deploy again.")
		}
	}
	http.Redirect(w, r, "/projects/"+p.Name, http.StatusSeeOther)
}

// deploymentRow is a deployment as the project page lists it.
type deploymentRow struct {
	*projects.Deployment
	// Move is "promote" or "rollback" for a ready deployment that is not in production; "" otherwise.
	Move string
}

func (d *Dashboard) projectPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	d.renderProject(w, r, u, http.StatusOK, "")
}

// renderProject draws the project page, with errMsg above it when a form on it was refused.
func (d *Dashboard) renderProject(w http.ResponseWriter, r *http.Request, u *store.User, status int, errMsg string) {
	data, err := d.projectData(r, u)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	data["Error"] = errMsg
	Render(w, r, status, "project", data)
}

// projectData reads what the project page shows: the project, and unless it is being deleted its aliases, one
// page of deployments (?cursor=) and the deployment in production.
func (d *Dashboard) projectData(r *http.Request, u *store.User) (map[string]any, error) {
	ctx := r.Context()
	name := r.PathValue("name")
	p, err := d.svc.ProjectGet(ctx, u.ID, name)
	if err != nil {
		return nil, err
	}
	data := map[string]any{"Title": p.Name, "Project": p}
	if p.Deletion != nil {
		return data, nil
	}
	aliases, err := d.svc.ProjectAliases(ctx, u.ID, name)
	if err != nil {
		return nil, err
	}
	list, err := d.svc.DeploymentList(ctx, u.ID, projects.DeploymentListParams{Project: name, Limit: 30, Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		return nil, err
	}
	var prod *projects.Deployment
	rows := make([]deploymentRow, 0, len(list.Deployments))
	for _, dep := range list.Deployments {
		if dep.ID == p.ProductionDeploymentID {
			prod = dep
		}
	}
	for _, dep := range list.Deployments {
		rows = append(rows, deploymentRow{Deployment: dep, Move: moveKind(dep, p.ProductionDeploymentID, prod)})
	}
	data["Aliases"], data["Deployments"], data["NextCursor"] = aliases, rows, list.NextCursor
	data["Production"] = prod
	return data, nil
}

// projectLive sends the project page's live parts alone (template project_live): the production line, the
// aliases and the rows of the same page of deployments. dashboard.js swaps them in when production or an alias
// may have moved, so the page never draws these facts a second way.
func (d *Dashboard) projectLive(w http.ResponseWriter, r *http.Request, u *store.User) {
	data, err := d.projectData(r, u)
	if err == nil && data["Aliases"] == nil {
		err = ferry.Errorf(ferry.ECONFLICT, "project %s is being deleted", r.PathValue("name"))
	}
	if err != nil {
		http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
		return
	}
	renderFragment(w, r, "project", "project_live", data)
}

// renderFragment draws one named template of page without the layout, for dashboard.js to swap into a page
// that is already open. Like Render it renders into a buffer first, so an error is a clean 500.
func renderFragment(w http.ResponseWriter, r *http.Request, page, name string, data map[string]any) {
	data["CSRF"] = auth.CSRFToken(r.Context())
	ts, err := Templates()
	var buf bytes.Buffer
	if err == nil {
		if t := ts[page]; t == nil {
			err = fmt.Errorf("no template %q", page)
		} else {
			err = t.ExecuteTemplate(&buf, name, data)
		}
	}
	if err != nil {
		slog.ErrorContext(r.Context(), "render fragment", "page", page, "fragment", name, "err", err)
		http.Error(w, "internal error: the page could not be drawn", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// moveKind says which production move a deployment offers: none unless it is ready and not in production;
// "rollback" when it is older than production's, "promote" otherwise.
func moveKind(dep *projects.Deployment, prodID string, prod *projects.Deployment) string {
	if dep.Status != store.StatusReady || dep.ID == prodID {
		return ""
	}
	if prodID != "" && (prod == nil || dep.CreatedAt.Before(prod.CreatedAt)) {
		return "rollback"
	}
	return "promote"
}

func (d *Dashboard) projectEvents(w http.ResponseWriter, r *http.Request, u *store.User) {
	p, err := d.svc.ProjectGet(r.Context(), u.ID, r.PathValue("name"))
	if err != nil {
		http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
		return
	}
	d.streams.Project(w, r, p.ID)
}

func (d *Dashboard) deployNow(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	if err := form(r); err != nil {
		d.fail(w, r, err)
		return
	}
	dep, err := d.svc.DeployNow(r.Context(), u.ID, name, projects.DeployParams{
		Branch: strings.TrimSpace(r.PostFormValue("branch")), Commit: strings.TrimSpace(r.PostFormValue("commit"))})
	if err != nil {
		if ferry.HTTPStatus(err) >= 500 || ferry.ErrorCode(err) == ferry.ENOTFOUND {
			d.fail(w, r, err)
			return
		}
		d.renderProject(w, r, u, ferry.HTTPStatus(err), ferry.ErrorMessage(err))
		return
	}
	http.Redirect(w, r, "/deployments/"+dep.ID, http.StatusSeeOther)
}

func (d *Dashboard) deploymentPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	d.renderDeployment(w, r, u, http.StatusOK, "")
}

// renderDeployment draws the deployment page, with errMsg above it when an action on it was refused.
func (d *Dashboard) renderDeployment(w http.ResponseWriter, r *http.Request, u *store.User, status int, errMsg string) {
	ctx := r.Context()
	id := r.PathValue("id")
	data, err := d.deploymentData(r, u)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var lines []projects.LogLine
	for after := int64(0); ; {
		page, err := d.svc.DeploymentLogs(ctx, u.ID, id, after, 10000)
		if err != nil {
			d.fail(w, r, err)
			return
		}
		lines = append(lines, page...)
		if len(page) < 10000 || len(lines) >= 50000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	var last int64
	if len(lines) > 0 {
		last = lines[len(lines)-1].Seq
	}
	dep := data["D"].(*projects.Deployment)
	steps, total := buildLog(lines, dep.Error)
	data["Lines"], data["Steps"], data["Total"], data["LastSeq"], data["Error"] = lines, steps, total, last, errMsg
	Render(w, r, status, "deployment", data)
}

// deploymentData reads the deployment and which production move it offers: "promote", "rollback" (it is older
// than the deployment in production) or "" (it is not ready, or it is in production).
func (d *Dashboard) deploymentData(r *http.Request, u *store.User) (map[string]any, error) {
	ctx := r.Context()
	dep, err := d.svc.DeploymentGet(ctx, u.ID, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	move := ""
	if dep.Status == store.StatusReady && !dep.Production {
		move = "promote"
		if p, err := d.svc.ProjectGet(ctx, u.ID, dep.Project); err == nil && p.ProductionDeploymentID != "" {
			if cur, err := d.svc.DeploymentGet(ctx, u.ID, p.ProductionDeploymentID); err == nil && dep.CreatedAt.Before(cur.CreatedAt) {
				move = "rollback"
			}
		}
	}
	return map[string]any{"Title": "Deployment " + dep.ID, "D": dep, "Move": move}, nil
}

// deploymentLive sends the deployment page's action buttons and production tag alone (template
// deployment_live), for dashboard.js to swap in whenever the status changes.
func (d *Dashboard) deploymentLive(w http.ResponseWriter, r *http.Request, u *store.User) {
	data, err := d.deploymentData(r, u)
	if err != nil {
		http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
		return
	}
	renderFragment(w, r, "deployment", "deployment_live", data)
}

func (d *Dashboard) deploymentEvents(w http.ResponseWriter, r *http.Request, u *store.User) {
	dep, err := d.svc.DeploymentGet(r.Context(), u.ID, r.PathValue("id"))
	if err != nil {
		http.Error(w, ferry.ErrorMessage(err), ferry.HTTPStatus(err))
		return
	}
	d.streams.Deployment(w, r, dep.ID)
}

// deploymentAction runs redeploy, cancel, promote and rollback, then shows the deployment that resulted.
func (d *Dashboard) deploymentAction(w http.ResponseWriter, r *http.Request, u *store.User) {
	ctx := r.Context()
	id := r.PathValue("id")
	var (
		dep    *projects.Deployment
		err    error
		notice string
	)
	switch r.PathValue("action") {
	case "redeploy":
		dep, err = d.svc.Redeploy(ctx, u.ID, id)
		notice = "Redeploying."
	case "cancel":
		dep, err = d.svc.Cancel(ctx, u.ID, id)
		notice = "Canceled."
	case "promote":
		dep, err = d.svc.Promote(ctx, u.ID, id)
		notice = "Promoted to production."
	case "rollback":
		dep, err = d.svc.Rollback(ctx, u.ID, id)
		notice = "Production rolled back to this deployment."
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		if ferry.HTTPStatus(err) >= 500 || ferry.ErrorCode(err) == ferry.ENOTFOUND {
			d.fail(w, r, err)
			return
		}
		d.renderDeployment(w, r, u, ferry.HTTPStatus(err), ferry.ErrorMessage(err))
		return
	}
	d.auth.Flash(w, notice)
	http.Redirect(w, r, "/deployments/"+dep.ID, http.StatusSeeOther)
}

func (d *Dashboard) settingsData(w http.ResponseWriter, r *http.Request, u *store.User) (map[string]any, bool) {
	ctx := r.Context()
	p, err := d.svc.ProjectGet(ctx, u.ID, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return nil, false
	}
	env, err := d.svc.EnvList(ctx, u.ID, p.Name)
	if err != nil {
		d.fail(w, r, err)
		return nil, false
	}
	prot, err := d.svc.ProtectionGet(ctx, u.ID, p.Name)
	if err != nil {
		d.fail(w, r, err)
		return nil, false
	}
	o := p.Settings.Overrides
	ret, err := d.svc.RetentionGet(ctx, u.ID, p.Name)
	if err != nil {
		d.fail(w, r, err)
		return nil, false
	}
	// The name is the site's host name and storage prefix: fixed once a deployment exists, and the form says so.
	list, err := d.svc.DeploymentList(ctx, u.ID, projects.DeploymentListParams{Project: p.Name, Limit: 1})
	if err != nil {
		d.fail(w, r, err)
		return nil, false
	}
	return map[string]any{
		"Retention": ret, "RetentionSet": p.Settings.Retention, "HumanBytes": humanBytes,
		"Title": "Settings · " + p.Name, "Project": p, "Env": env, "Mask": projects.Mask, "Protection": prot,
		"NameFixed": len(list.Deployments) > 0, "GitHubApp": p.InstallationID != 0,
		"RootDirectory": deref(o.RootDirectory), "InstallCommand": deref(o.InstallCommand),
		"BuildCommand": deref(o.BuildCommand), "OutputDirectory": deref(o.OutputDirectory),
	}, true
}

// retentionForm reads the settings form's retention fields: blank is 0, the server's default.
func retentionForm(r *http.Request) (retention.Policy, error) {
	var p retention.Policy
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"retention_rollback_window", &p.RollbackWindow}, {"retention_min_age_hours", &p.MinAgeHours},
		{"retention_preview_grace_days", &p.PreviewGraceDays}, {"retention_stale_after_days", &p.StaleAfterDays},
		{"retention_cache_max_age_days", &p.CacheMaxAgeDays}, {"retention_log_retention_days", &p.LogRetentionDays},
	} {
		v := strings.TrimSpace(r.PostFormValue(f.name))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return p, ferry.Errorf(ferry.EINVALID, "retention: %q is not a whole number; leave the field blank for the default", v)
		}
		*f.dst = n
	}
	if v := strings.TrimSpace(r.PostFormValue("retention_cache_max_mb")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return p, ferry.Errorf(ferry.EINVALID, "retention: %q is not a whole number of megabytes; leave it blank for the default", v)
		}
		p.CacheMaxMB = n
	}
	return p, nil
}

// humanBytes prints a size for people: 1.5 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (d *Dashboard) settingsPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	data, ok := d.settingsData(w, r, u)
	if !ok {
		return
	}
	Render(w, r, http.StatusOK, "project_settings", data)
}

// optional turns a form field into an override: blank keeps ferry.json's value.
func optional(v string) *string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	return &v
}

func (d *Dashboard) saveSettings(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	var p *projects.Project
	if err == nil {
		newName, branch := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("branch"))
		// Approval only matters for fork builds; with them off, the (default-on) box says nothing.
		var ret retention.Policy
		ret, err = retentionForm(r)
		s := projects.Settings{
			Retention:           ret,
			BuildForks:          r.PostFormValue("build_forks") == "on",
			RequireForkApproval: r.PostFormValue("build_forks") == "on" && r.PostFormValue("require_fork_approval") == "on",
			Overrides: projects.Overrides{
				RootDirectory: optional(r.PostFormValue("root_directory")), InstallCommand: optional(r.PostFormValue("install_command")),
				BuildCommand: optional(r.PostFormValue("build_command")), OutputDirectory: optional(r.PostFormValue("output_directory")),
			},
		}
		// Without a GitHub App the fork options are not shown (nothing can fork): what was set stays.
		if r.PostFormValue("fork_options") != "shown" {
			if cur, gerr := d.svc.ProjectGet(r.Context(), u.ID, name); gerr == nil {
				s.BuildForks, s.RequireForkApproval = cur.Settings.BuildForks, cur.Settings.RequireForkApproval
			}
		}
		if err == nil {
			p, err = d.svc.ProjectUpdateSettings(r.Context(), u.ID, name, projects.ProjectUpdateParams{Name: &newName, ProductionBranch: &branch, Settings: &s})
		}
	}
	d.afterSettings(w, r, u, err, "settings", func() (string, string) { return "/projects/" + p.Name + "/settings", "Settings saved." })
}

// afterSettings redirects after a successful settings form, or shows the settings page again with the error
// next to the form that caused it.
func (d *Dashboard) afterSettings(w http.ResponseWriter, r *http.Request, u *store.User, err error, which string, next func() (string, string)) {
	if err == nil {
		to, notice := next()
		d.auth.Flash(w, notice)
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	status := ferry.HTTPStatus(err)
	if status >= 500 || ferry.ErrorCode(err) == ferry.ENOTFOUND {
		d.fail(w, r, err)
		return
	}
	data, ok := d.settingsData(w, r, u)
	if !ok {
		return
	}
	data[which+"Error"] = ferry.ErrorMessage(err)
	if which == "env" {
		data["EnvKey"], data["EnvEnvironment"] = r.PostFormValue("key"), r.PostFormValue("environment")
	}
	Render(w, r, status, "project_settings", data)
}

// saveProtection applies the "Protection" section: the mode, a new or removed password, a key rotation.
func (d *Dashboard) saveProtection(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	if err == nil {
		mode := r.PostFormValue("mode")
		p := projects.ProtectionSetParams{Mode: &mode, RotateKey: r.PostFormValue("rotate_key") == "on"}
		if pw := r.PostFormValue("password"); pw != "" {
			p.Password = &pw
		} else if r.PostFormValue("remove_password") == "on" {
			p.Password = &pw
		}
		_, err = d.svc.ProtectionSet(r.Context(), u.ID, name, p)
	}
	d.afterSettings(w, r, u, err, "protection", func() (string, string) {
		return "/projects/" + name + "/settings#protection", "Protection saved; the proxy applies it within seconds."
	})
}

// createShareLink makes a share link and shows it once, in the notice.
func (d *Dashboard) createShareLink(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	var l *projects.ShareLink
	if err == nil {
		l, err = d.svc.ShareLinkCreate(r.Context(), u.ID, name, projects.ShareLinkParams{
			Alias: strings.TrimSpace(r.PostFormValue("alias")), ExpiresIn: r.PostFormValue("expires_in")})
	}
	d.afterSettings(w, r, u, err, "protection", func() (string, string) {
		return "/projects/" + name + "/settings#protection", "Share link (works until " + l.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + "): " + l.URL
	})
}

func (d *Dashboard) setEnv(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	if err == nil {
		_, err = d.svc.EnvSet(r.Context(), u.ID, name, projects.EnvSetParams{
			Environment: r.PostFormValue("environment"), Key: strings.TrimSpace(r.PostFormValue("key")), Value: r.PostFormValue("value")})
	}
	d.afterSettings(w, r, u, err, "env", func() (string, string) {
		return "/projects/" + name + "/settings#env", "Saved " + strings.TrimSpace(r.PostFormValue("key")) + ". Its value will not be shown again."
	})
}

func (d *Dashboard) deleteEnv(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	if err == nil {
		err = d.svc.EnvDelete(r.Context(), u.ID, name, r.PostFormValue("environment"), r.PostFormValue("key"))
	}
	d.afterSettings(w, r, u, err, "env", func() (string, string) {
		return "/projects/" + name + "/settings#env", "Deleted " + r.PostFormValue("key") + "."
	})
}

func (d *Dashboard) deleteProject(w http.ResponseWriter, r *http.Request, u *store.User) {
	name := r.PathValue("name")
	err := form(r)
	if err == nil && r.PostFormValue("confirm") != name {
		err = ferry.Errorf(ferry.EINVALID, "type the project's name, %s, to confirm", name)
	}
	if err == nil {
		_, err = d.svc.ProjectDelete(r.Context(), u.ID, name, projects.ProjectDeleteParams{
			PurgeStorage: r.PostFormValue("purge_storage") == "on", Confirm: r.PostFormValue("confirm")})
	}
	d.afterSettings(w, r, u, err, "delete", func() (string, string) {
		return "/projects/" + name, "Deleting " + name + " in the background."
	})
}

func init() {
	// statusLabel is how a status reads on a badge; dashboard.js uses the same words.
	Funcs["statusLabel"] = func(s store.DeploymentStatus) string {
		if s == "" {
			return ""
		}
		return strings.ToUpper(string(s[:1])) + string(s[1:])
	}
	// took is how long a deployment's build ran, "" before it finished.
	Funcs["took"] = func(d *projects.Deployment) string {
		if d == nil || d.StartedAt == nil || d.FinishedAt == nil {
			return ""
		}
		return span(*d.StartedAt, *d.FinishedAt)
	}
	// flashIsError tells a flash that reports a problem ("!" first) from a plain notice; flashText is its text.
	Funcs["flashIsError"] = func(f string) bool { return strings.HasPrefix(f, "!") }
	Funcs["flashText"] = func(f string) string { return strings.TrimPrefix(f, "!") }
	// clock is a log line's time of day (UTC), which the build log shows in front of each line.
	Funcs["clock"] = func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("15:04:05")
	}
	// shortSHA is a commit's first 7 characters, as git shows them.
	Funcs["shortSHA"] = func(sha string) string {
		if len(sha) > 7 {
			return sha[:7]
		}
		return sha
	}
}
