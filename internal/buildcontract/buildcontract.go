// Package buildcontract is the contract between the App and `ferry build`, the runner that builds one commit:
// the cache scopes it is started with, and the wire types of the events and secrets an ECS build exchanges with
// the App over HTTP (Event, Secrets). Both sides import this package, and the App imports
// nothing else of the runner, so that the server never links the sandbox, the clone or the build steps
// (TestAppDoesNotLinkTheRunner).
package buildcontract

import (
	"encoding/json"
	"time"

	"github.com/ferryhq/ferry/internal/ferry"
)

// Build events: a build that runs away from the App (an ECS task) streams its log and its outcome back over
// HTTP, so that the dashboard shows live logs whichever builder ran it and the App learns the result without
// reading the task's own log stream. The App's side is app/buildevents; the runner's is internal/build.
//
//	POST /internal/builds/<id>/secrets   Authorization: Bearer <claim token>   -> Secrets, once
//	POST /internal/builds/<id>/events    Authorization: Bearer <events token>  body: Event JSON lines
//	                                     X-Ferry-Batch: n (1, 2, 3...; a repeated n is ignored, so retries are safe)

// Event types.
const (
	// EventLog is one log record of the runner.
	EventLog = "log"
	// EventProgress marks the start of a step (clone, install, build, publish).
	EventProgress = "progress"
	// EventResult is the last event of a published build: Result holds `ferry build --json`'s object.
	EventResult = "result"
	// EventError is the last event of a failed build: Code is the ferry error code, Message what went wrong.
	EventError = "error"
)

// Event is one line of an events body.
type Event struct {
	Type    string          `json:"type"`
	Time    time.Time       `json:"time,omitzero"`
	Level   string          `json:"level,omitempty"`
	Step    string          `json:"step,omitempty"`
	Message string          `json:"msg,omitempty"`
	Code    string          `json:"code,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// BatchHeader numbers the batches of one build, so that the App can drop a batch a retry sent twice.
const BatchHeader = "X-Ferry-Batch"

// Secrets is what a build task fetches once from the App instead of finding it in its RunTask request, where
// anyone allowed to call ecs:DescribeTasks (and CloudTrail) would see it.
type Secrets struct {
	// EventsToken authenticates the events that follow. The claim token that fetched these secrets is dead by
	// then, so the token visible in the ECS API is worth nothing once the task has started.
	EventsToken string `json:"events_token"`
	// GitHubToken is the installation token for the clone ("" clones anonymously).
	GitHubToken string `json:"github_token,omitempty"`
	// Env holds the project's env vars for the build commands.
	Env map[string]string `json:"env,omitempty"`
	// AWS is a session scoped to the project's storage prefix; nil uses the SDK's default chain.
	AWS *AWSCredentials `json:"aws,omitempty"`
}

// AWSCredentials is one STS session.
type AWSCredentials struct {
	AccessKeyID     string    `json:"access_key_id"`
	SecretAccessKey string    `json:"secret_access_key"`
	SessionToken    string    `json:"session_token"`
	Expiration      time.Time `json:"expiration"`
}

// Cache scopes (`ferry build --cache-scope`): how far the code of a build is trusted, and so which dependency
// cache it may read and write. internal/build's cache.go explains why each scope keeps a cache of its own.
const (
	CacheScopeProduction = "production"
	CacheScopePreview    = "preview"
	CacheScopeFork       = "fork"
)

// ParseCacheScope checks a scope name; "" is CacheScopePreview, the default for a caller that does not say:
// it never writes what production reads.
func ParseCacheScope(s string) (string, error) {
	switch s {
	case "":
		return CacheScopePreview, nil
	case CacheScopeProduction, CacheScopePreview, CacheScopeFork:
		return s, nil
	}
	return "", ferry.Errorf(ferry.EINVALID, "cache scope %q: want production, preview or fork", s)
}
