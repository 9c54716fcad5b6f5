package ghreport_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/ghreport/ghfake"
)

// TestDeploymentsDeleteAndEnvironment: a closed PR's deployments are marked inactive and then deleted (GitHub
// refuses an active one), with the installation's token; another PR's stay. Deleting the environment needs
// the administration permission: without it the error is EFORBIDDEN and nothing changes; with it the
// environment goes, and a second delete is not an error.
func TestDeploymentsDeleteAndEnvironment(t *testing.T) {
	t.Parallel()
	s, app := newApp(t)
	r := app.Reporter(inst)
	ctx := context.Background()
	id1 := deployPreview(t, r, 9, sha1, "d-1")
	id2 := deployPreview(t, r, 9, sha2, "d-2")
	other := deployPreview(t, r, 10, sha2, "d-3")

	s.Reset()
	n, err := r.DeploymentsDelete(ctx, owner, repo, "preview/pr-9")
	must(t, err)
	if n != 2 {
		t.Errorf("deleted %d deployments, want 2", n)
	}
	var deletes []string
	for _, c := range s.Calls() {
		if c.Method == "DELETE" {
			deletes = append(deletes, c.String())
			if c.Auth != ghfake.AuthInstallation || c.Installation != inst || c.Status != 204 {
				t.Errorf("%s: auth %v installation %d status %d, want the installation's token and 204", c, c.Auth, c.Installation, c.Status)
			}
		}
	}
	slices.Sort(deletes)
	want := []string{fmt.Sprintf("DELETE /repos/acme/site/deployments/%d", id1), fmt.Sprintf("DELETE /repos/acme/site/deployments/%d", id2)}
	slices.Sort(want)
	if !slices.Equal(deletes, want) {
		t.Errorf("deletes %v, want %v", deletes, want)
	}
	// The inactive status came before each delete: the fake answers 422 otherwise.
	left := s.Deployments(owner, repo)
	if len(left) != 1 || left[0].ID != other {
		t.Errorf("deployments left %+v, want only PR 10's", left)
	}

	err = r.EnvironmentDelete(ctx, owner, repo, "preview/pr-10")
	if ferry.ErrorCode(err) != ferry.EFORBIDDEN {
		t.Fatalf("environment delete without administration: %v, want EFORBIDDEN", err)
	}
	// preview/pr-9 outlived its deployments, as on GitHub.
	if got := s.Environments(owner, repo); !slices.Equal(got, []string{"preview/pr-10", "preview/pr-9"}) {
		t.Errorf("environments %v after a refused delete", got)
	}
	s.GrantAdministration(inst)
	must(t, r.EnvironmentDelete(ctx, owner, repo, "preview/pr-10"))
	must(t, r.EnvironmentDelete(ctx, owner, repo, "preview/pr-9"))
	if got := s.Environments(owner, repo); len(got) != 0 {
		t.Errorf("environments %v after delete", got)
	}
	must(t, r.EnvironmentDelete(ctx, owner, repo, "preview/pr-10")) // already gone: fine
	if err := r.EnvironmentDelete(ctx, owner, repo, "production"); ferry.ErrorCode(err) != ferry.EINVALID {
		t.Errorf("deleting production: %v, want EINVALID", err)
	}
}
