package projects

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
)

// Mask is what an env var's value shows as once saved: it is never shown again, whole or in part.
const Mask = "••••••••"

// EnvVar is an env var as users see it: its value is always Mask.
type EnvVar struct {
	Environment string    `json:"environment"` // "production" or "preview"
	Key         string    `json:"key"`
	Value       string    `json:"value"` // always Mask
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// EnvSetParams saves one env var.
type EnvSetParams struct {
	// Environment is "production" (builds of the production branch) or "preview" (everything else).
	Environment string `json:"environment"`
	Key         string `json:"key"`
	Value       string `json:"value"`
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validateEnvironment(env string) error {
	if env != store.EnvProduction && env != store.EnvPreview {
		return ferry.Errorf(ferry.EINVALID, "environment %q is unknown: use production or preview", env)
	}
	return nil
}

func validateEnvKey(k string) error {
	switch {
	case k == "":
		return ferry.Errorf(ferry.EINVALID, "the env var name is empty")
	case len(k) > MaxEnvKey:
		return ferry.Errorf(ferry.ETOOLARGE, "the env var name is longer than %d characters", MaxEnvKey)
	case !envKeyRE.MatchString(k):
		return ferry.Errorf(ferry.EINVALID, "env var name %q must be letters, digits and underscores, not starting with a digit (like API_URL)", k)
	case strings.HasPrefix(strings.ToUpper(k), "FERRY_"):
		return ferry.Errorf(ferry.EINVALID, "env var names starting with FERRY_ are reserved for Ferry itself")
	}
	return nil
}

// EnvSet encrypts and saves one env var (replacing its value if it exists). The value is never shown again;
// builds of the environment get it from their next run, and the build log masks it.
func (s *Service) EnvSet(ctx context.Context, userID int64, project string, p EnvSetParams) (*EnvVar, error) {
	proj, err := s.writableProject(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	if err := validateEnvironment(p.Environment); err != nil {
		return nil, err
	}
	if err := validateEnvKey(p.Key); err != nil {
		return nil, err
	}
	switch {
	case len(p.Value) > MaxEnvValue:
		return nil, ferry.Errorf(ferry.ETOOLARGE, "the value of %s is longer than %d bytes", p.Key, MaxEnvValue)
	case strings.ContainsAny(p.Value, "\r\n\x00"):
		return nil, ferry.Errorf(ferry.EINVALID, "the value of %s must be one line (no line breaks); encode multi-line secrets, for example in base64", p.Key)
	case s.cfg.EnvCipher == nil:
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "env vars cannot be saved: this Ferry has no secret key (start it with --secret-key-file, a file of 32 random bytes: head -c 32 /dev/urandom | base64 > key)")
	}
	vars, err := s.cfg.Store.EnvList(ctx, proj.ID)
	if err != nil {
		return nil, err
	}
	n, exists := 0, false
	for _, v := range vars {
		if v.Environment == p.Environment {
			n++
			exists = exists || v.Key == p.Key
		}
	}
	if !exists && n >= MaxEnvPerEnv {
		return nil, ferry.Errorf(ferry.ETOOLARGE, "project %s has %d %s env vars already, the most it can have", proj.Name, n, p.Environment)
	}
	v, err := s.cfg.Store.EnvSet(ctx, store.EnvSetParams{ProjectID: proj.ID, Environment: p.Environment, Key: p.Key,
		Sealed: s.cfg.EnvCipher.Seal(proj.ID, p.Environment, p.Key, p.Value)})
	if err != nil {
		return nil, err
	}
	s.cfg.Logger.InfoContext(ctx, "env var saved", "project", proj.Name, "environment", p.Environment, "key", p.Key, "user", userID)
	return &EnvVar{Environment: v.Environment, Key: v.Key, Value: Mask, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}, nil
}

// EnvList returns a project's env vars with masked values, by environment and name.
func (s *Service) EnvList(ctx context.Context, userID int64, project string) ([]EnvVar, error) {
	proj, err := s.project(ctx, userID, project)
	if err != nil {
		return nil, err
	}
	vars, err := s.cfg.Store.EnvList(ctx, proj.ID)
	if err != nil {
		return nil, err
	}
	out := make([]EnvVar, len(vars))
	for i, v := range vars {
		out[i] = EnvVar{Environment: v.Environment, Key: v.Key, Value: Mask, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	}
	return out, nil
}

// EnvDelete removes one env var; an unknown one is ENOTFOUND.
func (s *Service) EnvDelete(ctx context.Context, userID int64, project, environment, key string) error {
	proj, err := s.writableProject(ctx, userID, project)
	if err != nil {
		return err
	}
	if err := validateEnvironment(environment); err != nil {
		return err
	}
	if err := validateEnvKey(key); err != nil {
		return ferry.Errorf(ferry.ENOTFOUND, "env var %q is not set for %s", key, environment)
	}
	if err := s.cfg.Store.EnvDelete(ctx, store.EnvDeleteParams{ProjectID: proj.ID, Environment: environment, Key: key}); err != nil {
		return err
	}
	s.cfg.Logger.InfoContext(ctx, "env var deleted", "project", proj.Name, "environment", environment, "key", key, "user", userID)
	return nil
}
