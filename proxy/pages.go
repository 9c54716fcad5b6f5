package proxy

// Fixed pages. They never echo the request (no host, no path), so they cannot carry injected markup, and they
// say what to check next.
var (
	pageUnknownHost = htmlPage("No site here", "This host name is not a Ferry site. Preview links look like "+
		"<code>&lt;project&gt;.DOMAIN</code> (production) or <code>&lt;name&gt;--&lt;project&gt;.DOMAIN</code> "+
		"(an alias such as pr-42, or a deployment id). Check the link you followed.")
	pageNoSuchSite = htmlPage("No such site", "There is no site with this name here. Check the link for a typo; "+
		"a preview link looks like <code>&lt;name&gt;--&lt;project&gt;.DOMAIN</code>.")
	pageNoProduction = htmlPage("No production deployment yet", "This project exists but nothing has been "+
		"published to production yet. Publish it (<code>ferry publish DIR</code>, or merge to the production "+
		"branch), or open one of its preview links.")
	pagePreviewRemoved = htmlPage("Deployment not found", "This project has no deployment under this name: the "+
		"preview was removed, or the link is wrong. Check the link, or open the project's latest preview.")
	pageNotFound    = htmlPage("404 Not Found", "This deployment has no file at this path.")
	pageUnavailable = htmlPage("Site temporarily unavailable", "The site's storage cannot be reached right now, "+
		"and this page is not cached. Try again in a moment.")
	pageBrokenDeployment = htmlPage("Deployment is broken", "A file of this deployment is missing or does not "+
		"match its manifest in storage. Publish the site again.")
	pageProxyRefused = htmlPage("Proxy rule refused", "This site's _redirects proxies this path (status 200) "+
		"to another origin that this server's operator has not allowed (ferry proxy --proxy-origins).")
	pageProxyFailed = htmlPage("Bad gateway", "The origin that this path is proxied to did not answer in time, "+
		"or answered with something that cannot be passed on.")
	pageBadHost = htmlPage("Bad request", "The Host header is missing or is not a valid host name.")
	pageBadPath = htmlPage("Bad request", "The request path is not allowed: it contains a dot segment, an encoded slash or backslash, a NUL or control byte, or a malformed escape.")
	pageTooLong = htmlPage("Path too long", "The request path is longer than 2048 bytes.")
	pageMethod  = htmlPage("Method not allowed", "Sites are read-only: use GET or HEAD.")
	pageRange   = htmlPage("Range not satisfiable", "The requested byte range is outside the file.")

	pageSignIn         = htmlPage("Sign in", "This site is for its team only. You are being sent to sign in with GitHub.")
	pageHandoffRefused = htmlPage("Sign-in link refused", "This sign-in link has expired (they last 60 seconds), "+
		"was used already (each works once), was made for another site, or was altered. Open the site again to sign in anew.")
	pageShareRefused = htmlPage("Link expired", "This share link has expired, was revoked, or was altered. Ask the "+
		"person who sent it for a new one.")
	pageClosed = htmlPage("Protected site", "This site is open to its team only, and no way in is set up here. "+
		"Ask the team for a share link.")
	pageSignedOut = htmlPage("Signed out", "You no longer have access to this site in this browser.")
)

func htmlPage(title, text string) []byte {
	return []byte("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + title +
		"</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}</style>" +
		"</head><body><h1>" + title + "</h1><p>" + text + "</p><p><small>Ferry</small></p></body></html>\n")
}
