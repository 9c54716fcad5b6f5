package site

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Domain states in domains/<host>.json. Only a verified domain is served and gets a certificate.
const (
	DomainPending  = "pending"
	DomainVerified = "verified"
)

// MaxHostLen is the longest custom host name accepted (DNS allows 253; the proxy's Host buffer is sized on it).
const MaxHostLen = 253

// Domain is domains/<host>.json: a custom host name attached to a project (docs/architecture.md, "Custom
// domains and certificates"). It sits at the top level, not under the project's prefix, so that the proxy can
// map a Host to its project without knowing the project, and so that a host can belong to one project only.
// The app writes it; the proxy reads it and serves only verified ones.
type Domain struct {
	Host    string `json:"host"`
	Project string `json:"project"`
	// Alias is what the host serves; default production. A staging domain may serve another alias.
	Alias string `json:"alias"`
	// Status is DomainPending until the app has seen the DNS record that proves ownership, then DomainVerified.
	Status string `json:"status"`
	// Token is the value of the TXT record _ferry-challenge.<host> that proves ownership (a CNAME to
	// <project>.D proves it too).
	Token string `json:"token"`
	// RedirectTo, when set, is a host that this one answers with a 301 to (apex → www).
	RedirectTo string `json:"redirectTo,omitempty"`
	// Owner is the app user who attached the domain, for the app's own checks; the proxy ignores it.
	Owner     string    `json:"owner,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// CheckError is why the last DNS check failed, shown to the user while pending.
	CheckError string    `json:"checkError,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	VerifiedAt time.Time `json:"verifiedAt,omitzero"`
}

// DomainKey is where a host's mapping lives.
func DomainKey(host string) string { return "domains/" + host + ".json" }

// CertStatusKey is where the proxy reports a host's certificate: certificates/ for what certmagic stores is
// under acme/, this is Ferry's own summary for the dashboard.
func CertStatusKey(host string) string { return "acme-status/" + host + ".json" }

// CertStatus is acme-status/<host>.json, written by the proxy after each issuance or renewal attempt, or, with
// --tls-cert-file, from the names the file covers.
type CertStatus struct {
	Host string `json:"host"`
	// State is "active" after a certificate was obtained, "error" after an attempt failed.
	State     string    `json:"state"`
	Error     string    `json:"error,omitempty"`
	Renewal   bool      `json:"renewal,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ValidateCustomHost checks that host can be a custom domain of a project under preview domain d: a DNS name of
// at least two labels, each [a-z0-9-] and at most 63 characters, no wildcard, not an IP address, and neither d
// nor a name under it (those are Ferry's own preview names). It returns the host lowercased, without a trailing
// dot.
func ValidateCustomHost(host, d string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	d = strings.TrimSuffix(strings.ToLower(trimHost(trimScheme(d))), ".")
	bad := func(why string) (string, error) {
		return "", ferry.Errorf(ferry.EINVALID, "domain %q %s", host, why)
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return bad("is an IP address; certificates and custom domains need a DNS name")
	}
	switch {
	case h == "":
		return bad("is empty; give a host name such as www.example.com")
	case len(h) > MaxHostLen:
		return bad(fmt.Sprintf("is longer than %d characters", MaxHostLen))
	case strings.Contains(h, "*"):
		return bad("is a wildcard; attach each host name (www.example.com, example.com) on its own")
	case strings.Contains(h, "://") || strings.ContainsAny(h, "/:@?#"):
		return bad("is not a bare host name; give it without scheme, port or path, such as www.example.com")
	}
	if d != "" && (h == d || strings.HasSuffix(h, "."+d)) {
		return bad(fmt.Sprintf("is Ferry's preview domain %s or under it; those names are given out by Ferry", d))
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return bad("has a single label; give a full name such as www.example.com")
	}
	for _, l := range labels {
		if reason := labelProblem(strings.ReplaceAll(l, "--", "-x"), MaxLabel); reason != "" || l == "" {
			return bad(fmt.Sprintf("has an invalid label %q (1-63 letters, digits and hyphens, not starting or ending with a hyphen)", l))
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return bad("ends in a numeric label, which no top-level domain is")
	}
	return h, nil
}

const maxDomainBytes = 64 << 10

// DomainGet reads a host's mapping (ENOTFOUND if none). A mapping whose host does not match its key, or that
// names an invalid project or alias, is refused as corrupt.
func (s *Store) DomainGet(ctx context.Context, host string) (*Domain, error) {
	if host == "" || len(host) > MaxHostLen || strings.ContainsAny(host, "/\\*") {
		return nil, ferry.Errorf(ferry.EINVALID, "%q is not a host name", host)
	}
	data, err := s.read(ctx, DomainKey(host), maxDomainBytes)
	if err != nil {
		return nil, fmt.Errorf("get domain: %w", err)
	}
	var d Domain
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get domain %s: %w", host, err)
	}
	if d.Alias == "" {
		d.Alias = ProductionAlias
	}
	if d.Host != host || validateProjectAlias(d.Project, d.Alias) != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get domain %s: it names host %q, project %q, alias %q", host, d.Host, d.Project, d.Alias)
	}
	return &d, nil
}

// DomainPut writes a host's mapping.
func (s *Store) DomainPut(ctx context.Context, d *Domain) error {
	if d.Alias == "" {
		d.Alias = ProductionAlias
	}
	if err := validateProjectAlias(d.Project, d.Alias); err != nil {
		return err
	}
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode domain: %w", err)
	}
	if err := s.putBytes(ctx, DomainKey(d.Host), data); err != nil {
		return fmt.Errorf("put domain %s: %w", d.Host, err)
	}
	s.signal(ctx, d.Project, d.Host)
	return nil
}

// DomainDelete removes a host's mapping and its certificate status; a missing one is not an error.
func (s *Store) DomainDelete(ctx context.Context, host string) error {
	if err := s.Storage.Delete(ctx, DomainKey(host)); err != nil {
		return fmt.Errorf("delete domain %s: %w", host, err)
	}
	s.signal(ctx, "", host)
	if err := s.Storage.Delete(ctx, CertStatusKey(host)); err != nil {
		return fmt.Errorf("delete certificate status of %s: %w", host, err)
	}
	return nil
}

// DomainList returns every mapping (all projects), sorted by host. Unreadable entries are skipped.
func (s *Store) DomainList(ctx context.Context) ([]Domain, error) {
	objs, err := s.Storage.List(ctx, "domains/")
	if err != nil {
		return nil, fmt.Errorf("list domains: %w", err)
	}
	var out []Domain
	for _, o := range objs {
		host, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, "domains/"), ".json")
		if !ok || strings.Contains(host, "/") {
			continue
		}
		d, err := s.DomainGet(ctx, host)
		if err != nil {
			if ferry.ErrorCode(err) == ferry.EUNAVAILABLE {
				return nil, err
			}
			continue
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// CertStatusGet reads what the proxy last reported about host's certificate (ENOTFOUND before any attempt).
func (s *Store) CertStatusGet(ctx context.Context, host string) (*CertStatus, error) {
	data, err := s.read(ctx, CertStatusKey(host), maxDomainBytes)
	if err != nil {
		return nil, fmt.Errorf("get certificate status: %w", err)
	}
	var cs CertStatus
	if err := json.Unmarshal(data, &cs); err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "get certificate status %s: %w", host, err)
	}
	return &cs, nil
}

// CertStatusPut records the outcome of an issuance or renewal.
func (s *Store) CertStatusPut(ctx context.Context, cs CertStatus) error {
	data, err := json.Marshal(cs)
	if err != nil {
		return fmt.Errorf("encode certificate status: %w", err)
	}
	if err := s.putBytes(ctx, CertStatusKey(cs.Host), data); err != nil {
		return fmt.Errorf("put certificate status %s: %w", cs.Host, err)
	}
	return nil
}
