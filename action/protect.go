package action

import (
	"context"
	"net/url"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
)

// shareTTL is how long the share-url output works.
const shareTTL = 7 * 24 * time.Hour

// applyProtection writes the project's protection.json from the protection inputs (keeping its key, so that
// earlier share links keep working) and, when the site it deploys is protected, makes the share-url output.
// Without the Ferry app there is no GitHub sign-in for members, so a protected site needs a password.
func (r *run) applyProtection(ctx context.Context, o *outcome) error {
	if r.in.Protection == "" {
		return nil
	}
	st := r.store.Storage
	s, err := protect.Get(ctx, st, r.project)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND || ferry.ErrorCode(err) == ferry.EINVALID:
		s = &protect.Settings{}
		s.Rotate()
	case err != nil:
		return publishError(r.in.Storage, err)
	}
	s.Mode = r.in.Protection
	if r.in.ProtectionPassword != "" {
		if s.PasswordHash, err = protect.HashPassword(r.in.ProtectionPassword); err != nil {
			return ferry.Errorf(ferry.EINVALID, "input protection-password: %w", err)
		}
	}
	if s.Mode != protect.Public && s.PasswordHash == "" && !s.Members {
		return ferry.Errorf(ferry.EINVALID, "input protection is %s, but nobody could get in: members-only sign-in (people who can read the repository) needs the Ferry app. "+
			"Without it, set protection-password from a secret (`protection-password: ${{ secrets.PREVIEW_PASSWORD }}`); the share-url output then also gives a link that opens the site for 7 days", s.Mode)
	}
	if err := protect.Put(ctx, st, r.project, s); err != nil {
		return publishError(r.in.Storage, err)
	}
	r.log.InfoContext(ctx, "protection set", "project", r.project, "mode", s.Mode, "password", s.PasswordHash != "")
	name := o.Deployment
	if len(r.aliases) > 0 {
		name = r.aliases[0]
	}
	if o.URL == "" || !s.Mode.Protects(name) {
		return nil
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return ferry.Errorf(ferry.EINVALID, "input domain: %w", err)
	}
	u.Path = "/"
	u.RawQuery = url.Values{"ferry_share": {protect.ShareToken(s.Key, u.Hostname(), time.Now().Add(shareTTL))}}.Encode()
	o.ShareURL = u.String()
	return nil
}
