package ghreport

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCommentRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)
	rows := mergeRow(nil, CommentRow{Project: "site", Status: RowReady, URL: "https://pr-1--site.example.com",
		DeploymentURL: "https://d-1--site.example.com", Commit: "abcdef0123456789", UpdatedAt: at})
	// Hostile text stays inside its cell and inside the hidden block.
	rows = mergeRow(rows, CommentRow{Project: "a|b --> <script>", Status: RowFailed, UpdatedAt: at})
	body := renderComment(rows)
	if !strings.HasPrefix(body, CommentMarker) {
		t.Fatalf("body does not start with the marker:\n%s", body)
	}
	if strings.Count(body, "-->") != 2 {
		t.Errorf("a row closed an HTML comment early:\n%s", body)
	}
	if !strings.Contains(body, "| site | Ready | [pr-1--site.example.com](https://pr-1--site.example.com) | [d-1--site.example.com](https://d-1--site.example.com) | `abcdef0` | 2024-05-01 12:30 |") {
		t.Errorf("site row not rendered as expected:\n%s", body)
	}
	if !strings.Contains(body, `a\|b --&gt; &lt;script&gt;`) {
		t.Errorf("hostile project name not escaped:\n%s", body)
	}
	got := parseCommentRows(body)
	a, _ := json.Marshal(rows)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("round trip:\n got %s\nwant %s", b, a)
	}
	if parseCommentRows("<!-- ferry:preview -->\nedited by hand") != nil {
		t.Error("a body without rows should parse to none")
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 140, "short"},
		{"line one\n\tline two", 140, "line one line two"},
		{"abcdef", 4, "abc…"},
		{"日本語のテキスト", 5, "日本語の…"},
		{strings.Repeat("é", 140), 140, strings.Repeat("é", 140)},
		{strings.Repeat("é", 141), 140, strings.Repeat("é", 139) + "…"},
	} {
		got := truncate(tc.in, tc.n)
		if got != tc.want || utf8.RuneCountInString(got) > tc.n {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// FuzzParseCommentRows feeds comment bodies anyone could have edited: parsing never fails, and what it yields
// renders into a body that parses back to the same rows.
func FuzzParseCommentRows(f *testing.F) {
	at := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)
	f.Add(renderComment([]CommentRow{{Project: "site", Status: RowReady, URL: "https://x", Commit: "abc", UpdatedAt: at}}))
	f.Add(CommentMarker + "\n" + rowsPrefix + `{"rows":[{"project":"p","status":"Ready"},{"project":""}]} -->`)
	f.Add(rowsPrefix + `{"rows":null} -->`)
	f.Add(rowsPrefix + `{"rows":[{"project":"p","updated_at":"2024-01-01T00:00:00+02:00"}]} -->`)
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		rows := parseCommentRows(body)
		out := renderComment(rows)
		if !strings.HasPrefix(out, CommentMarker) {
			t.Fatal("rendered body lacks the marker")
		}
		again := parseCommentRows(out)
		a, _ := json.Marshal(rows)
		b, _ := json.Marshal(again)
		if len(rows) > 0 && string(a) != string(b) {
			t.Fatalf("round trip:\n got %s\nwant %s", b, a)
		}
	})
}
