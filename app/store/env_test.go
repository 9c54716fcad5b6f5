package store_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryhq/ferry/app/store"
	"github.com/ferryhq/ferry/internal/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
)

func TestEnvCipher(t *testing.T) {
	t.Parallel()
	c := must[*store.EnvCipher](t)(store.NewEnvCipher(bytes.Repeat([]byte{1}, 32)))
	sealed := c.Seal(7, "production", "API_KEY", "s3cret")
	if bytes.Contains(sealed, []byte("s3cret")) {
		t.Fatal("plaintext in the ciphertext")
	}
	if again := c.Seal(7, "production", "API_KEY", "s3cret"); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if v, err := c.Open(7, "production", "API_KEY", sealed); err != nil || v != "s3cret" {
		t.Fatalf("Open = %q, %v", v, err)
	}
	// Moved to another project, environment or name, or under another key, it does not open.
	other := must[*store.EnvCipher](t)(store.NewEnvCipher(bytes.Repeat([]byte{2}, 32)))
	for name, open := range map[string]func() (string, error){
		"project":     func() (string, error) { return c.Open(8, "production", "API_KEY", sealed) },
		"environment": func() (string, error) { return c.Open(7, "preview", "API_KEY", sealed) },
		"name":        func() (string, error) { return c.Open(7, "production", "OTHER", sealed) },
		"key":         func() (string, error) { return other.Open(7, "production", "API_KEY", sealed) },
		"truncated":   func() (string, error) { return c.Open(7, "production", "API_KEY", sealed[:10]) },
	} {
		if v, err := open(); err == nil || ferry.ErrorCode(err) != ferry.EINTERNAL {
			t.Errorf("opened with another %s: %q, %v", name, v, err)
		}
	}
	_, err := store.NewEnvCipher([]byte("short"))
	wantCode(t, err, ferry.EINVALID)
}

func TestSecretKeyFiles(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb}, 32)
	for name, form := range map[string][]byte{
		"raw":     key,
		"std":     []byte(base64.StdEncoding.EncodeToString(key) + "\n"),
		"raw std": []byte(base64.RawStdEncoding.EncodeToString(key)),
		"url":     []byte("  " + base64.URLEncoding.EncodeToString(key) + "  \n"),
		"raw url": []byte(base64.RawURLEncoding.EncodeToString(key)),
	} {
		got, err := store.ParseSecretKey(form)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "short", base64.StdEncoding.EncodeToString(key[:16]), string(bytes.Repeat([]byte{'a'}, 31))} {
		_, err := store.ParseSecretKey([]byte(bad))
		wantCode(t, err, ferry.EINVALID)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")
	_, err := store.LoadSecretKey(path)
	wantCode(t, err, ferry.EINVALID)
	k1 := must[[]byte](t)(store.EnsureSecretKeyFile(path))
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || len(k1) != 32 {
		t.Fatalf("created %v %v (%d bytes)", fi.Mode(), err, len(k1))
	}
	if k2 := must[[]byte](t)(store.EnsureSecretKeyFile(path)); !bytes.Equal(k1, k2) {
		t.Fatal("a second EnsureSecretKeyFile made a new key")
	}
	if k3 := must[[]byte](t)(store.LoadSecretKey(path)); !bytes.Equal(k1, k3) {
		t.Fatal("LoadSecretKey reads another key")
	}
	// A file that exists but holds no key is never replaced.
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = store.EnsureSecretKeyFile(garbage)
	wantCode(t, err, ferry.EINVALID)
	if b, _ := os.ReadFile(garbage); string(b) != "not a key" {
		t.Fatal("EnsureSecretKeyFile replaced an existing file")
	}
}

func TestEnvVars(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(pgtest.New(t))
	c := must[*store.EnvCipher](t)(store.NewEnvCipher(bytes.Repeat([]byte{3}, 32)))
	p := newProject(t, st)
	set := func(env, key, value string) error {
		_, err := st.EnvSet(ctx, store.EnvSetParams{ProjectID: p.ID, Environment: env, Key: key, Sealed: c.Seal(p.ID, env, key, value)})
		return err
	}
	for _, kv := range [][3]string{{"production", "A", "1"}, {"production", "B", "2"}, {"preview", "A", "p"}, {"production", "A", "1b"}} {
		if err := set(kv[0], kv[1], kv[2]); err != nil {
			t.Fatal(err)
		}
	}
	vars := must[[]store.EnvVar](t)(st.EnvList(ctx, p.ID))
	if len(vars) != 3 || vars[0].Environment != "preview" || vars[1].Key != "A" || vars[2].Key != "B" {
		t.Fatalf("EnvList = %+v", vars)
	}
	prod := must[map[string]string](t)(st.EnvValues(ctx, store.EnvValuesParams{ProjectID: p.ID, Environment: "production", Cipher: c}))
	if len(prod) != 2 || prod["A"] != "1b" || prod["B"] != "2" {
		t.Fatalf("production values = %v", prod)
	}
	_, err := st.EnvValues(ctx, store.EnvValuesParams{ProjectID: p.ID, Environment: "production"})
	wantCode(t, err, ferry.EINTERNAL) // values but no key: never silently empty
	if v := must[map[string]string](t)(st.EnvValues(ctx, store.EnvValuesParams{ProjectID: 999999, Environment: "production"})); len(v) != 0 {
		t.Fatalf("values of a project without env vars = %v", v)
	}
	wantCode(t, set("staging", "A", "x"), ferry.EINVALID)
	wantCode(t, set("production", "1A", "x"), ferry.EINVALID)
	_, err = st.EnvSet(ctx, store.EnvSetParams{ProjectID: 999999, Environment: "production", Key: "A", Sealed: []byte{1}})
	wantCode(t, err, ferry.ENOTFOUND)
	if err := st.EnvDelete(ctx, store.EnvDeleteParams{ProjectID: p.ID, Environment: "production", Key: "B"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, st.EnvDelete(ctx, store.EnvDeleteParams{ProjectID: p.ID, Environment: "production", Key: "B"}), ferry.ENOTFOUND)

	// Deletion progress, and the project row going last takes its env vars with it.
	if d := must[*store.ProjectDeletion](t)(st.ProjectDeletionGet(ctx, p.ID)); d != nil {
		t.Fatalf("deletion before start: %+v", d)
	}
	must[*store.ProjectDeletion](t)(st.ProjectDeletionStart(ctx, p.ID))
	_, err = st.ProjectDeletionStart(ctx, p.ID)
	wantCode(t, err, ferry.ECONFLICT)
	if err := st.ProjectDeletionProgress(ctx, store.ProjectDeletionProgressParams{ID: p.ID, Total: 10, Done: 4}); err != nil {
		t.Fatal(err)
	}
	if d := must[*store.ProjectDeletion](t)(st.ProjectDeletionGet(ctx, p.ID)); d == nil || d.Total != 10 || d.Done != 4 {
		t.Fatalf("deletion = %+v", d)
	}
	must[*store.Project](t)(st.ProjectDeleteByID(ctx, p.ID))
	if vars := must[[]store.EnvVar](t)(st.EnvList(ctx, p.ID)); len(vars) != 0 {
		t.Fatalf("env vars outlive their project: %+v", vars)
	}
}
