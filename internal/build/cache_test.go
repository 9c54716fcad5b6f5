package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
)

type entry struct {
	name, body, link string
	typ              byte
}

func archive(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestUntarRefusesEscapes feeds hostile cache archives (a build can write its own cache) and checks that
// nothing lands outside the cached folders.
func TestUntarRefusesEscapes(t *testing.T) {
	parts := []string{"cache", "src/node_modules"}
	for name, entries := range map[string][]entry{
		"dot-dot":              {{name: "cache/../../escape", body: "x", typ: tar.TypeReg}},
		"outside parts":        {{name: "src/index.html", body: "x", typ: tar.TypeReg}},
		"absolute link":        {{name: "cache/l", link: "/etc", typ: tar.TypeSymlink}},
		"link leaves its part": {{name: "src/node_modules/l", link: "../../../escape", typ: tar.TypeSymlink}},
		"write through link": {
			{name: "src/node_modules/a", link: ".", typ: tar.TypeSymlink},
			{name: "src/node_modules/a/b", link: "..", typ: tar.TypeSymlink},
		},
		"not gzip": nil,
	} {
		t.Run(name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "ws")
			os.MkdirAll(root, 0o755)
			data := []byte("garbage")
			if entries != nil {
				data = archive(t, entries...)
			}
			if err := untar(bytes.NewReader(data), root, parts); err == nil {
				t.Fatal("hostile archive accepted")
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
				t.Fatal("wrote outside the workspace")
			}
		})
	}
	root := t.TempDir()
	ok := archive(t,
		entry{name: "src/node_modules/.bin/", typ: tar.TypeDir},
		entry{name: "src/node_modules/ms/index.js", body: "module.exports=1", typ: tar.TypeReg},
		entry{name: "src/node_modules/.bin/ms", link: "../ms/index.js", typ: tar.TypeSymlink},
		entry{name: "cache/npm/x", body: "y", typ: tar.TypeReg},
	)
	if err := untar(bytes.NewReader(ok), root, parts); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "src/node_modules/.bin/ms")); err != nil || string(b) != "module.exports=1" {
		t.Errorf("link not restored: %q %v", b, err)
	}
}
