// Package deploy holds no code: its tests check the files that deploy Ferry, which no Go test would otherwise
// exercise. The Dockerfile (stages, pins, users, and every RUN step run for real here), .dockerignore, the
// Terraform module in deploy/terraform, and the release workflow. This machine has no Docker engine and cannot
// download Terraform providers, so these tests are how a broken image or module shows up before a release.
package deploy
