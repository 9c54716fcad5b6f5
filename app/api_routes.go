package app

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/ferryhq/ferry/app/api"
	"github.com/ferryhq/ferry/app/projects"
	"github.com/ferryhq/ferry/app/store"
)

// envCipher is the cipher of the projects' env vars, from --secret-key-file. Without a key file the app runs,
// but env vars cannot be saved (the API says how to fix that) and builds of projects that have some fail.
func envCipher(ctx context.Context, cfg Config, logger *slog.Logger) (*store.EnvCipher, error) {
	if cfg.SecretKeyFile == "" {
		logger.WarnContext(ctx, "no --secret-key-file: env vars cannot be saved (make one with: head -c 32 /dev/urandom | base64 > secret.key)")
		return nil, nil
	}
	key, err := store.LoadSecretKey(cfg.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	return store.NewEnvCipher(key)
}

// mountAPI mounts the REST API (/api/v1) on ui, the mux that auth.Middleware wraps.
func mountAPI(ui *http.ServeMux, svc *projects.Service, logger *slog.Logger) error {
	a, err := api.New(api.Config{Service: svc, Logger: logger})
	if err != nil {
		return err
	}
	a.Routes(ui)
	return nil
}
