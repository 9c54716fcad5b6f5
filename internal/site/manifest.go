package site

import (
	"time"

	"github.com/ferryhq/ferry/internal/siteconfig"
)

// ManifestVersion is the manifest format this code writes. Readers reject versions they do not know.
const ManifestVersion = 1

// Manifest is an immutable deployment: every URL path with its blob, plus the parsed serving config. It is
// stored at projects/<project>/deployments/<id>.json and written last, so a deployment exists only once every
// blob it names does.
type Manifest struct {
	Version    int       `json:"version"`
	Project    string    `json:"project"`
	Deployment string    `json:"deployment"`
	CreatedAt  time.Time `json:"createdAt"`
	// Files maps a URL path ("/index.html", "/assets/app.3f2a1b.js") to its blob.
	Files map[string]File `json:"files"`
	// Config is the serving configuration resolved at publish time.
	Config siteconfig.Serving `json:"config"`
	// Meta carries free-form facts for people and the dashboard (commit, ref, builder). Never interpreted.
	Meta map[string]string `json:"meta,omitempty"`
	// Aliases are the aliases the publish pointed at it, such as ["production"] or ["pr-42"]; the garbage
	// collector counts deployments published to production into the rollback window by it. Publish always
	// writes it (an empty list for none); nil means a manifest from before the field existed.
	Aliases []string `json:"aliases"`
}

// File is one published file.
type File struct {
	// Blob is the lowercase hex SHA-256 of the contents; the blob lives at projects/<project>/blobs/<Blob>.
	Blob        string `json:"blob"`
	Size        int64  `json:"size"`
	ContentType string `json:"contentType"`
}

// Alias is the small object at projects/<project>/aliases/<name>.json. Rewriting it is how promote, rollback
// and PR previews move: one object write, so the switch is instant.
type Alias struct {
	Deployment string    `json:"deployment"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Keys of the storage layout. Every writer and reader builds keys through these, never by hand.

// BlobKey is where a blob's bytes live.
func BlobKey(project, sha256hex string) string { return "projects/" + project + "/blobs/" + sha256hex }

// ManifestKey is where a deployment's manifest lives.
func ManifestKey(project, deployment string) string {
	return "projects/" + project + "/deployments/" + deployment + ".json"
}

// AliasKey is where an alias lives.
func AliasKey(project, alias string) string {
	return "projects/" + project + "/aliases/" + alias + ".json"
}

// ProjectPrefix is everything a project owns; per-project credentials are scoped to it.
func ProjectPrefix(project string) string { return "projects/" + project + "/" }
