package action

import (
	"fmt"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/protect"
)

// Inputs are the step's `with:` values, as action.yml declares them. The runner passes each as INPUT_<NAME>
// (upper case, hyphens kept); action.yml supplies the defaults, so an empty value means "not set".
type Inputs struct {
	Directory      string
	BuildCommand   string
	InstallCommand string
	RootDirectory  string
	Project        string
	Storage        string
	RoleToAssume   string
	AWSRegion      string
	Domain         string
	Alias          string
	Production     string // auto, true or false
	// ProductionBranch is the branch that production "auto" deploys; empty: the repository's default branch
	// as the event payload names it.
	ProductionBranch      string
	GitHubToken           string
	Comment               bool
	DeploymentEnvironment string
	// Protection is "" (leave the project's protection as it is), public, previews or all.
	Protection protect.Mode
	// ProtectionPassword is the shared password (from a secret); "" keeps the one set before.
	ProtectionPassword string
}

// inputNames lists every input in action.yml, in the order `ferry action -h` shows them.
var inputNames = []string{
	"directory", "build-command", "install-command", "root-directory", "project", "storage", "role-to-assume",
	"aws-region", "domain", "alias", "production", "production-branch", "github-token", "comment", "deployment-environment",
	"protection", "protection-password",
}

// readInputs reads and validates the inputs. Every error names the input and says what to write instead.
func readInputs(gha *githubactions.Action) (*Inputs, error) {
	in := &Inputs{
		Directory:             gha.GetInput("directory"),
		BuildCommand:          gha.GetInput("build-command"),
		InstallCommand:        gha.GetInput("install-command"),
		RootDirectory:         gha.GetInput("root-directory"),
		Project:               gha.GetInput("project"),
		Storage:               gha.GetInput("storage"),
		RoleToAssume:          gha.GetInput("role-to-assume"),
		AWSRegion:             gha.GetInput("aws-region"),
		Domain:                gha.GetInput("domain"),
		Alias:                 gha.GetInput("alias"),
		Production:            strings.ToLower(gha.GetInput("production")),
		ProductionBranch:      strings.TrimPrefix(strings.TrimSpace(gha.GetInput("production-branch")), "refs/heads/"),
		GitHubToken:           gha.GetInput("github-token"),
		DeploymentEnvironment: gha.GetInput("deployment-environment"),
	}
	if in.Storage == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "input storage is required: set `storage: s3://BUCKET/PREFIX?region=REGION` under `with:`")
	}
	switch in.Production {
	case "":
		in.Production = "auto"
	case "auto", "true", "false":
	default:
		return nil, ferry.Errorf(ferry.EINVALID, "input production is %q: want auto, true or false", in.Production)
	}
	comment, err := parseBoolInput("comment", gha.GetInput("comment"), true)
	if err != nil {
		return nil, err
	}
	in.Comment = comment
	if v := gha.GetInput("protection"); v != "" {
		if in.Protection, err = protect.ParseMode(v); err != nil {
			return nil, ferry.Errorf(ferry.EINVALID, "input protection is %q: want public, previews or all", v)
		}
	}
	in.ProtectionPassword = gha.GetInput("protection-password")
	if in.ProtectionPassword != "" {
		gha.AddMask(in.ProtectionPassword)
		if in.Protection == "" {
			return nil, ferry.Errorf(ferry.EINVALID, "input protection-password is set but protection is not: add `protection: previews` (or all)")
		}
	}
	return in, nil
}

// parseBoolInput accepts what YAML authors write for booleans; empty gives def.
func parseBoolInput(name, v string, def bool) (bool, error) {
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, ferry.Errorf(ferry.EINVALID, "input %s is %q: want true or false", name, v)
}

// inputEnv is the variable the runner sets for input name; tests use it too.
func inputEnv(name string) string { return fmt.Sprintf("INPUT_%s", strings.ToUpper(name)) }
