package build

import "testing"

// skipShort skips a slow test under -short, the inner loop (`go test -short ./...`); CI runs everything.
func skipShort(t *testing.T, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: " + why + "; run without -short")
	}
}
