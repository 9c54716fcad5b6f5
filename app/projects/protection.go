package projects

import (
	"context"
	"net/url"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
	"github.com/ferryhq/ferry/internal/site"
)

// Protection is a project's protection as the dashboard and the API show it: never the key or the password
// hash.
type Protection struct {
	// Mode is public, previews or all.
	Mode protect.Mode `json:"mode"`
	// HasPassword: a shared password opens the protected hosts.
	HasPassword bool `json:"hasPassword"`
	// Members: people who can read the repository on GitHub sign in. Always true for projects the app writes.
	Members bool `json:"members"`
	// KeyID names the key that share links and access cookies are signed with; rotating it revokes them.
	KeyID string `json:"keyId,omitempty"`
}

// ProtectionSetParams changes a project's protection; nil fields stay as they are.
type ProtectionSetParams struct {
	Mode *string `json:"mode,omitempty"`
	// Password sets the shared password (8 to 72 bytes); "" removes it.
	Password *string `json:"password,omitempty"`
	// RotateKey revokes every share link and access cookie (members sign in again at once, without noticing).
	RotateKey bool `json:"rotateKey,omitempty"`
}

// ShareLinkParams asks for a share link to one of the project's hosts.
type ShareLinkParams struct {
	// Alias is the alias or deployment id the link opens; "" or "production" is the production host.
	Alias string `json:"alias,omitempty"`
	// ExpiresIn is how long the link works, as a Go duration ("24h"). Default 7 days, at most 90 days.
	ExpiresIn string `json:"expiresIn,omitempty"`
}

// ShareLink is a link that opens a protected host without signing in, until it expires or the key rotates.
type ShareLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func protectionView(s *protect.Settings) *Protection {
	if s == nil {
		return &Protection{Mode: protect.Public, Members: true}
	}
	return &Protection{Mode: s.Mode, HasPassword: s.PasswordHash != "", Members: s.Members, KeyID: s.KeyID}
}

// settings reads protection.json, or nil when the project has none.
func (s *Service) protection(ctx context.Context, project string) (*protect.Settings, error) {
	ps, err := protect.Get(ctx, s.cfg.Site.Storage, project)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil, nil
	}
	return ps, err
}

// ProtectionGet returns a project's protection.
func (s *Service) ProtectionGet(ctx context.Context, userID int64, name string) (*Protection, error) {
	p, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	ps, err := s.protection(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	return protectionView(ps), nil
}

// ProtectionSet changes a project's protection in storage, where the proxy reads it within its alias TTL.
func (s *Service) ProtectionSet(ctx context.Context, userID int64, name string, p ProtectionSetParams) (*Protection, error) {
	proj, err := s.writableProject(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	ps, err := s.protection(ctx, proj.Name)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		ps = &protect.Settings{Mode: protect.Public}
		ps.Rotate()
	}
	ps.Members = true
	if p.Mode != nil {
		if ps.Mode, err = protect.ParseMode(*p.Mode); err != nil {
			return nil, err
		}
	}
	if p.Password != nil {
		ps.PasswordHash = ""
		if *p.Password != "" {
			if ps.PasswordHash, err = protect.HashPassword(*p.Password); err != nil {
				return nil, err
			}
		}
	}
	if p.RotateKey {
		ps.Rotate()
	}
	if err := protect.Put(ctx, s.cfg.Site.Storage, proj.Name, ps); err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "project protection changed", "project", proj.Name, "user", userID, "mode", ps.Mode,
		"password", ps.PasswordHash != "", "rotated", p.RotateKey)
	return protectionView(ps), nil
}

// ShareLinkCreate signs a link to one of the project's hosts.
func (s *Service) ShareLinkCreate(ctx context.Context, userID int64, name string, p ShareLinkParams) (*ShareLink, error) {
	proj, err := s.project(ctx, userID, name)
	if err != nil {
		return nil, err
	}
	alias := p.Alias
	if alias == "" {
		alias = site.ProductionAlias
	}
	if !site.IsDeploymentID(alias) {
		if err := site.ValidateAlias(proj.Name, alias); err != nil {
			return nil, err
		}
	}
	ttl := 7 * 24 * time.Hour
	if p.ExpiresIn != "" {
		if ttl, err = time.ParseDuration(p.ExpiresIn); err != nil || ttl <= 0 || ttl > 90*24*time.Hour {
			return nil, ferry.Errorf(ferry.EINVALID, "expiresIn %q: give a duration between 1m and 2160h (90 days), such as 24h", p.ExpiresIn)
		}
	}
	ps, err := s.protection(ctx, proj.Name)
	if err != nil {
		return nil, err
	}
	if ps == nil || ps.Mode == protect.Public {
		return nil, ferry.Errorf(ferry.ECONFLICT, "project %s is public; protect it before making share links", proj.Name)
	}
	raw := site.DeploymentURL(s.cfg.Domain, proj.Name, alias)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, ferry.Errorf(ferry.EINTERNAL, "share link for %s: %w", raw, err)
	}
	exp := time.Now().Add(ttl).Truncate(time.Second)
	u.Path = "/"
	u.RawQuery = url.Values{"ferry_share": {protect.ShareToken(ps.Key, u.Hostname(), exp)}}.Encode()
	s.cfg.Logger.InfoContext(ctx, "share link made", "project", proj.Name, "alias", alias, "user", userID, "expires", exp)
	return &ShareLink{URL: u.String(), ExpiresAt: exp}, nil
}
