package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/internal/ferry"
)

// TestOpenPathSuggestsFileURL: --storage .ferry/storage is refused with the file:// URL of that folder.
func TestOpenPathSuggestsFileURL(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), ".ferry/storage")
	want := "file://" + filepath.Join(wd, ".ferry/storage")
	if ferry.ErrorCode(err) != ferry.EINVALID || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want EINVALID suggesting %s", err, want)
	}
}
