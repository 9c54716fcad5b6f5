package build

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// caEnv are the variables through which an operator points TLS clients at extra CA certificates (a
// TLS-inspecting proxy's): node and corepack read NODE_EXTRA_CA_CERTS, npm and pnpm npm_config_cafile, Yarn 2+
// YARN_HTTPS_CA_FILE_PATH, git and curl SSL_CERT_FILE and SSL_CERT_DIR. Ferry passes those set in its own
// environment on to the build unchanged, with the files they name bound read-only.
var caEnv = []string{"NODE_EXTRA_CA_CERTS", "npm_config_cafile", "NPM_CONFIG_CAFILE", "YARN_HTTPS_CA_FILE_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// useCAFiles takes the operator's CA settings from ferry's environment into the build's.
func (s *sandbox) useCAFiles(log *slog.Logger) {
	for _, k := range caEnv {
		v, ok := os.LookupEnv(k)
		if !ok || v == "" || !filepath.IsAbs(v) {
			continue
		}
		if _, err := os.Stat(v); err != nil {
			log.Warn("CA setting names a missing file; not passed to the build", "var", k, "path", v)
			continue
		}
		if s.extraEnv == nil {
			s.extraEnv = map[string]string{}
		}
		s.extraEnv[k] = v
		if !underSystem(v) && !underBoundEtc(v) && !contains(s.binds, v) {
			s.binds = append(s.binds, v)
		}
	}
}

func underBoundEtc(p string) bool {
	for _, d := range []string{"/etc/ssl", "/etc/ca-certificates", "/etc/pki"} {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// useNode puts a node from the tool cache first on the build's PATH and binds it read-only. npm and corepack
// stay the builder's: they are scripts that run on whichever node PATH names.
func (s *sandbox) useNode(t nodeTool) {
	if t.BinDir == "" {
		return
	}
	s.binds = append(s.binds, t.Prefix)
	if s.mode == SandboxBwrap {
		s.path = strings.Replace(s.path, insideRoot+"/bin:", insideRoot+"/bin:"+t.BinDir+":", 1)
	} else {
		s.path = t.BinDir + ":" + s.path
	}
}
