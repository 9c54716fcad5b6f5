package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// domainRoutes are the project's custom-domains page and its forms.
func (d *Dashboard) domainRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /projects/{name}/domains", d.signedIn(d.domainsPage))
	mux.HandleFunc("POST /projects/{name}/domains", d.signedIn(d.attachDomain))
	mux.HandleFunc("POST /projects/{name}/domains/verify", d.signedIn(d.verifyDomain))
	mux.HandleFunc("POST /projects/{name}/domains/delete", d.signedIn(d.deleteDomain))
}

func (d *Dashboard) renderDomains(w http.ResponseWriter, r *http.Request, u *store.User, status int, errMsg string) {
	p, err := d.svc.ProjectGet(r.Context(), u.ID, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	ds, err := d.svc.DomainList(r.Context(), u.ID, p.Name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	Render(w, r, status, "project_domains", map[string]any{
		"Title": "Domains · " + p.Name, "Project": p, "Domains": ds, "DomainError": errMsg,
		"Host": r.PostFormValue("host"), "Alias": r.PostFormValue("alias"), "RedirectTo": r.PostFormValue("redirect_to"),
	})
}

func (d *Dashboard) domainsPage(w http.ResponseWriter, r *http.Request, u *store.User) {
	d.renderDomains(w, r, u, http.StatusOK, "")
}

// afterDomain redirects back to the domains page, or shows it again with the error next to the forms.
func (d *Dashboard) afterDomain(w http.ResponseWriter, r *http.Request, u *store.User, err error, notice string) {
	name := r.PathValue("name")
	if err == nil {
		d.auth.Flash(w, notice)
		http.Redirect(w, r, "/projects/"+url.PathEscape(name)+"/domains", http.StatusSeeOther)
		return
	}
	if status := ferry.HTTPStatus(err); status >= 500 || ferry.ErrorCode(err) == ferry.ENOTFOUND && r.PostFormValue("host") == "" {
		d.fail(w, r, err)
		return
	}
	d.renderDomains(w, r, u, ferry.HTTPStatus(err), ferry.ErrorMessage(err))
}

func (d *Dashboard) attachDomain(w http.ResponseWriter, r *http.Request, u *store.User) {
	err := form(r)
	var dom *projects.Domain
	if err == nil {
		dom, err = d.svc.DomainAttach(r.Context(), u.ID, r.PathValue("name"), projects.DomainAttachParams{
			Host: strings.TrimSpace(r.PostFormValue("host")), Alias: strings.TrimSpace(r.PostFormValue("alias")),
			RedirectTo: strings.TrimSpace(r.PostFormValue("redirect_to"))})
	}
	notice := ""
	if dom != nil {
		notice = "Attached " + dom.Host + "."
		if dom.State == projects.DomainStatePendingDNS {
			notice += " Add one of the DNS records shown below; Ferry checks again every few seconds."
		}
	}
	d.afterDomain(w, r, u, err, notice)
}

func (d *Dashboard) verifyDomain(w http.ResponseWriter, r *http.Request, u *store.User) {
	err := form(r)
	var dom *projects.Domain
	if err == nil {
		dom, err = d.svc.DomainVerify(r.Context(), u.ID, r.PathValue("name"), r.PostFormValue("host"))
	}
	notice := ""
	if dom != nil {
		notice = dom.Host + ": " + stateLabel(dom.State) + "."
		if dom.Reason != "" {
			notice += " " + dom.Reason
		}
	}
	d.afterDomain(w, r, u, err, notice)
}

func (d *Dashboard) deleteDomain(w http.ResponseWriter, r *http.Request, u *store.User) {
	err := form(r)
	if err == nil {
		err = d.svc.DomainDelete(r.Context(), u.ID, r.PathValue("name"), r.PostFormValue("host"))
	}
	d.afterDomain(w, r, u, err, "Removed "+r.PostFormValue("host")+".")
}

// stateLabel is how a domain state reads on its badge.
func stateLabel(s string) string {
	switch s {
	case projects.DomainStatePendingDNS:
		return "Pending DNS"
	case projects.DomainStateIssuing:
		return "Issuing certificate"
	case projects.DomainStateActive:
		return "Active"
	case projects.DomainStateError:
		return "Error"
	}
	return s
}

func init() { Funcs["domainState"] = stateLabel }
