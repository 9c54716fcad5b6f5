// Package siteconfig reads what users write to configure a site: Netlify-format _redirects and _headers files
// in the output folder, and ferry.json in the repository. Parsing happens once, at publish time; the result is
// stored in the deployment manifest, and the proxy compiles it once per manifest, never per request.
package siteconfig

// Serving is a site's resolved serving configuration, as stored in the manifest. Its JSON form is part of the
// storage contract (docs/architecture.md): the Action, builds and `ferry publish` write it; the proxy reads it.
type Serving struct {
	// SPA serves /index.html (status 200) for paths that match no file and have no file extension. Publish sets
	// it when the output looks like a single-page app (see Resolve), or when ferry.json says "spa": true.
	SPA bool `json:"spa"`
	// NotFound is the URL path of the custom 404 page ("/404.html"), served with status 404. Empty if none.
	NotFound string `json:"notFound,omitempty"`
	// CleanURLs serves /about from /about.html or /about/index.html. Default true.
	CleanURLs bool `json:"cleanUrls"`
	// TrailingSlash: "" leaves URLs alone, "add" redirects /about to /about/, "remove" redirects /about/ to /about.
	TrailingSlash string `json:"trailingSlash,omitempty"`
	// Redirects are the _redirects rules, in file order (first match wins).
	Redirects []Redirect `json:"redirects,omitempty"`
	// Headers are the _headers rules, in file order (every matching rule applies).
	Headers []HeaderRule `json:"headers,omitempty"`
	// Protection is ferry.json's "protection" ("", "public", "previews" or "all"). The proxy protects a host
	// when either this or the project's protection.json says so: a deployment can ask for more protection than
	// the project's settings, never less.
	Protection string `json:"protection,omitempty"`
}

// Redirect is one _redirects line: `FROM TO [STATUS][!]`.
type Redirect struct {
	// From is the path pattern: literal segments, :placeholders, and a trailing * splat.
	From string `json:"from"`
	// To is the target path or absolute URL; it may use :placeholders and :splat.
	To string `json:"to"`
	// Status is 200 (rewrite), 301, 302, 303, 307, 308 (redirects), 404 or 410 (serve To with that status).
	// Default 301.
	Status int `json:"status"`
	// Force applies the rule even when a file exists at From (the `!` suffix).
	Force bool `json:"force,omitempty"`
	// Query are the rule's query conditions (`/store id=:id /blog/:id`), all of which must hold.
	Query []QueryParam `json:"query,omitempty"`
	// Line is the line number in _redirects, for error messages and debugging.
	Line int `json:"line"`
}

// QueryParam is one `key=value` query condition of a _redirects rule. Value is a literal the parameter must
// equal, or ":name", which matches any value and captures it for TO.
type QueryParam struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// HeaderRule is one _headers block: a path pattern and the headers set on matching responses.
type HeaderRule struct {
	// Path is the pattern: literal segments, :placeholders and * (any run of characters).
	Path string `json:"path"`
	// Values maps a header name (canonical form) to its values, in file order.
	Values []Header `json:"values"`
	// Unset are the `! Name` lines: headers removed from matching responses (set by the proxy or by an
	// earlier rule), before Values are added.
	Unset []string `json:"unset,omitempty"`
	// Line is the line number of the path line in _headers.
	Line int `json:"line"`
}

// Header is one `Name: value` line under a _headers path.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// File is ferry.json, a repository's build and serving settings. Pointer fields distinguish "not set" from a
// zero value, so that detection fills only what the user left out.
type File struct {
	RootDirectory   string            `json:"rootDirectory,omitempty"`
	InstallCommand  *string           `json:"installCommand,omitempty"`
	BuildCommand    *string           `json:"buildCommand,omitempty"`
	OutputDirectory string            `json:"outputDirectory,omitempty"`
	NodeVersion     string            `json:"nodeVersion,omitempty"`
	Env             map[string]string `json:"env,omitempty"`
	SPA             *bool             `json:"spa,omitempty"`
	CleanURLs       *bool             `json:"cleanUrls,omitempty"`
	// TrailingSlash: true adds, false removes, unset leaves URLs alone.
	TrailingSlash *bool `json:"trailingSlash,omitempty"`
	// Protection is who may open the site: "public", "previews" (previews for members, a password or a share
	// link only) or "all" (production too). Empty leaves it to the project's settings.
	Protection string `json:"protection,omitempty"`
}
