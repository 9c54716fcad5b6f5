package projects

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/site"
)

// Resolver is the DNS that ownership checks ask: net.Resolver satisfies it. Tests point one at
// pebble-challtestsrv; operators may point --dns-server at a resolver of their choice.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupCNAME(ctx context.Context, host string) (string, error)
}

// ResolverAt returns a Resolver that sends every query to the DNS server addr (host:port).
func ResolverAt(addr string) Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	}}
}

// ChallengePrefix is the label in front of a host whose TXT record proves ownership.
const ChallengePrefix = "_ferry-challenge."

// pendingClaimTTL is how long an unverified claim holds a host against other projects, so that nobody can
// squat on a name they cannot prove.
const pendingClaimTTL = 72 * time.Hour

// maxDomainsPerProject bounds what one project can attach.
const maxDomainsPerProject = 50

// Domain states as users see them.
const (
	DomainStatePendingDNS = "pending_dns"
	DomainStateIssuing    = "issuing"
	DomainStateActive     = "active"
	DomainStateError      = "error"
)

// Domain is a custom domain as users see it: its state and the DNS records that prove ownership.
type Domain struct {
	Host       string `json:"host"`
	Alias      string `json:"alias"`
	RedirectTo string `json:"redirectTo,omitempty"`
	// State is pending_dns (no proving record seen yet), issuing (verified, no certificate yet), active
	// (certificate obtained) or error (the last issuance failed; Reason says why).
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Records are the DNS records that prove ownership; either one is enough.
	Records    []DNSRecord `json:"records"`
	CheckedAt  time.Time   `json:"checkedAt,omitzero"`
	VerifiedAt time.Time   `json:"verifiedAt,omitzero"`
	CreatedAt  time.Time   `json:"createdAt"`
}

// DNSRecord is one record for the user to create at their DNS provider.
type DNSRecord struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DomainAttachParams attaches a host to a project.
type DomainAttachParams struct {
	// Host is the custom domain, such as www.example.com. Required.
	Host string `json:"host"`
	// Alias is what it serves; default production.
	Alias string `json:"alias,omitempty"`
	// RedirectTo makes the host answer with a 301 to another host (apex → www); it should be attached too.
	RedirectTo string `json:"redirectTo,omitempty"`
}

func (s *Service) previewDomain() string {
	d := s.cfg.Domain
	if i := strings.Index(d, "://"); i >= 0 {
		d = d[i+3:]
	}
	if h, _, err := net.SplitHostPort(d); err == nil {
		d = h
	}
	return strings.TrimSuffix(d, "/")
}

func (s *Service) domainView(ctx context.Context, d *site.Domain) *Domain {
	v := &Domain{Host: d.Host, Alias: d.Alias, RedirectTo: d.RedirectTo, CheckedAt: d.CheckedAt, VerifiedAt: d.VerifiedAt, CreatedAt: d.CreatedAt,
		Records: []DNSRecord{
			{Type: "TXT", Name: ChallengePrefix + d.Host, Value: d.Token},
			{Type: "CNAME", Name: d.Host, Value: d.Project + "." + s.previewDomain()},
		}}
	switch {
	case d.Status != site.DomainVerified:
		v.State, v.Reason = DomainStatePendingDNS, d.CheckError
	default:
		v.State = DomainStateIssuing
		if cs, err := s.cfg.Site.CertStatusGet(ctx, d.Host); err == nil {
			switch cs.State {
			case "active":
				v.State = DomainStateActive
			case "error":
				v.State, v.Reason = DomainStateError, cs.Error
			}
		}
	}
	return v
}

// DomainAttach attaches a host to one of the user's projects, pending until its DNS proves ownership (checked
// at once, then by DomainWatch). A host attached to another project is ECONFLICT, unless that claim was never
// verified and is older than 72 hours. Attaching it again to the same project changes its alias or redirect.
func (s *Service) DomainAttach(ctx context.Context, userID int64, project string, p DomainAttachParams) (*Domain, error) {
	proj, err := s.writableProject(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	host, err := site.ValidateCustomHost(p.Host, s.previewDomain())
	if err != nil {
		return nil, err
	}
	alias := p.Alias
	if alias == "" {
		alias = site.ProductionAlias
	}
	if alias != site.ProductionAlias {
		if err := site.ValidateAlias(proj.Name, alias); err != nil {
			return nil, err
		}
	}
	redirect := ""
	if p.RedirectTo != "" {
		if redirect, err = site.ValidateCustomHost(p.RedirectTo, ""); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "redirectTo: %w", err)
		}
		if redirect == host {
			return nil, ferry.Errorf(ferry.EINVALID, "redirectTo %q is the domain itself", redirect)
		}
	}
	cur, err := s.cfg.Site.DomainGet(ctx, host)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND || ferry.ErrorCode(err) == ferry.EINTERNAL:
		cur = nil // absent, or unreadable junk that no proxy serves
	case err != nil:
		return nil, err
	case cur.Project != proj.Name && (cur.Status == site.DomainVerified || time.Since(cur.CreatedAt) < pendingClaimTTL):
		return nil, ferry.Errorf(ferry.ECONFLICT, "domain %s is attached to another Ferry project; it must be removed there first", host)
	case cur.Project != proj.Name:
		s.cfg.Logger.InfoContext(ctx, "replacing a stale unverified domain claim", "host", host, "old_project", cur.Project, "project", proj.Name)
		cur = nil
	}
	if cur == nil {
		all, err := s.cfg.Site.DomainList(ctx)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, d := range all {
			if d.Project == proj.Name {
				n++
			}
		}
		if n >= maxDomainsPerProject {
			return nil, ferry.Errorf(ferry.ETOOLARGE, "project %s already has %d domains, the most it may have", proj.Name, n)
		}
		var b [16]byte
		_, _ = rand.Read(b[:])
		cur = &site.Domain{Host: host, Project: proj.Name, Status: site.DomainPending, Token: "ferry-" + hex.EncodeToString(b[:]), CreatedAt: time.Now().UTC()}
	}
	cur.Alias, cur.RedirectTo, cur.Owner = alias, redirect, fmt.Sprint(userID)
	if err := s.cfg.Site.DomainPut(ctx, cur); err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "domain attached", "host", host, "project", proj.Name, "alias", alias, "user", userID)
	if cur.Status != site.DomainVerified {
		if err := s.domainCheck(ctx, cur); err != nil {
			return nil, err
		}
	}
	return s.domainView(ctx, cur), nil
}

// domainOf returns host's mapping if it belongs to the user's project, else ENOTFOUND.
func (s *Service) domainOf(ctx context.Context, userID int64, project, host string) (*site.Domain, error) {
	proj, err := s.project(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	d, err := s.cfg.Site.DomainGet(ctx, h)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND || ferry.ErrorCode(err) == ferry.EINVALID || err == nil && d.Project != proj.Name {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "project %s has no domain %q", proj.Name, host)
	}
	return d, err
}

// DomainList returns the project's domains, sorted by host.
func (s *Service) DomainList(ctx context.Context, userID int64, project string) ([]*Domain, error) {
	proj, err := s.project(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	all, err := s.cfg.Site.DomainList(ctx)
	if err != nil {
		return nil, err
	}
	out := []*Domain{}
	for i := range all {
		if all[i].Project == proj.Name {
			out = append(out, s.domainView(ctx, &all[i]))
		}
	}
	return out, nil
}

// DomainGet returns one of the project's domains.
func (s *Service) DomainGet(ctx context.Context, userID int64, project, host string) (*Domain, error) {
	d, err := s.domainOf(ctx, userID, project, host)
	if err != nil {
		return nil, err
	}
	return s.domainView(ctx, d), nil
}

// DomainVerify checks the domain's DNS now instead of waiting for DomainWatch.
func (s *Service) DomainVerify(ctx context.Context, userID int64, project, host string) (*Domain, error) {
	d, err := s.domainOf(ctx, userID, project, host)
	if err != nil {
		return nil, err
	}
	if d.Status != site.DomainVerified {
		if err := s.domainCheck(ctx, d); err != nil {
			return nil, err
		}
	}
	return s.domainView(ctx, d), nil
}

// DomainDelete detaches a domain: the proxy stops serving it within its cache time and issues nothing more.
func (s *Service) DomainDelete(ctx context.Context, userID int64, project, host string) error {
	d, err := s.domainOf(ctx, userID, project, host)
	if err != nil {
		return err
	}
	if err := s.cfg.Site.DomainDelete(ctx, d.Host); err != nil {
		return err
	}
	s.cfg.Logger.InfoContext(ctx, "domain removed", "host", d.Host, "project", d.Project, "user", userID)
	return nil
}

// domainCheck looks for the TXT record or the CNAME that proves d, and records the outcome in storage.
func (s *Service) domainCheck(ctx context.Context, d *site.Domain) error {
	resolver := s.cfg.DNS
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, why := false, ""
	txts, terr := resolver.LookupTXT(lctx, ChallengePrefix+d.Host)
	if slices.Contains(txts, d.Token) {
		ok = true
	} else {
		want := d.Project + "." + s.previewDomain()
		cname, cerr := resolver.LookupCNAME(lctx, d.Host)
		cname = strings.TrimSuffix(strings.ToLower(cname), ".")
		switch {
		case cerr == nil && cname == want:
			ok = true
		case terr != nil && isNotFound(terr):
			why = fmt.Sprintf("no TXT record %s%s yet (and no CNAME to %s)", ChallengePrefix, d.Host, want)
		case terr != nil:
			why = fmt.Sprintf("DNS lookup of %s%s failed: %v", ChallengePrefix, d.Host, terr)
		default:
			why = fmt.Sprintf("TXT record %s%s does not hold %s (found %q)", ChallengePrefix, d.Host, d.Token, txts)
		}
	}
	// Re-read: the domain may have been removed or changed while DNS answered.
	cur, err := s.cfg.Site.DomainGet(ctx, d.Host)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.Project != d.Project || cur.Token != d.Token {
		return nil
	}
	cur.CheckedAt, cur.CheckError = time.Now().UTC(), why
	if ok {
		cur.Status, cur.VerifiedAt, cur.CheckError = site.DomainVerified, cur.CheckedAt, ""
		s.cfg.Logger.InfoContext(ctx, "domain verified", "host", cur.Host, "project", cur.Project)
	}
	if err := s.cfg.Site.DomainPut(ctx, cur); err != nil {
		return err
	}
	*d = *cur
	return nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// DomainCheckPending checks every pending domain once and returns how many became verified.
func (s *Service) DomainCheckPending(ctx context.Context) (int, error) {
	all, err := s.cfg.Site.DomainList(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range all {
		d := &all[i]
		if d.Status == site.DomainVerified {
			continue
		}
		if err := s.domainCheck(ctx, d); err != nil {
			return n, err
		}
		if d.Status == site.DomainVerified {
			n++
		}
	}
	return n, nil
}

// DomainWatch re-checks pending domains every interval until ctx ends, so that a record added after attaching
// is picked up without the user asking again.
func (s *Service) DomainWatch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.DomainCheckPending(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.WarnContext(ctx, "checking pending domains failed; retrying", "err", err)
		}
	}
}
