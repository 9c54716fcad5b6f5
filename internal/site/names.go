// Package site is the site store: it publishes output folders as immutable, content-addressed deployments,
// moves aliases, and knows the host-name rules by which the proxy finds a deployment (DESIGN.md, "Storage" and
// "Host names").
package site

// ProductionAlias is the alias that <project>.D serves.
const ProductionAlias = "production"
