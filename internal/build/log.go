package build

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry/internal/site"
)

// NewLogHandler returns the handler that `ferry build` logs through. Format "text" writes one compact line per
// record ("2006-01-02T15:04:05.000Z07:00 step message key=value"), which is what people read in a build log;
// "json" writes slog's JSON records, which is what the App stores and filters. Every record carries the step.
func NewLogHandler(w io.Writer, format string) (slog.Handler, error) {
	switch format {
	case "", "text":
		return &textHandler{w: w, mu: &sync.Mutex{}}, nil
	case "json":
		return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: site.HumanAttr}), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// textHandler prints records as single lines that start with the time and the step, so a streamed log can be
// read and grepped as it scrolls by.
type textHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	attrs []slog.Attr
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	step := ""
	var rest []slog.Attr
	collect := func(a slog.Attr) bool {
		if a.Key == "step" && step == "" {
			step = a.Value.String()
		} else {
			rest = append(rest, a)
		}
		return true
	}
	for _, a := range h.attrs {
		collect(a)
	}
	r.Attrs(collect)
	if step == "" {
		step = "ferry"
	}
	var b bytes.Buffer
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.UTC().Format("2006-01-02T15:04:05.000Z"))
	fmt.Fprintf(&b, " %-8s ", step)
	if r.Level >= slog.LevelWarn {
		b.WriteString(r.Level.String())
		b.WriteString(": ")
	}
	b.WriteString(r.Message)
	for _, a := range rest {
		v := site.HumanAttr(nil, a).Value.String()
		if strings.ContainsAny(v, " \t\"=") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b.Bytes())
	return err
}

func (h *textHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler { return h }

// masker replaces secrets (the clone token, project env values) with "***" wherever they would be logged.
type masker struct {
	mu      sync.RWMutex
	secrets []string // longest first, so a secret that contains another is masked whole
}

// add registers a secret and the encodings in which it tends to leak (base64 in an Authorization header). A
// multi-line secret (a PEM key) is printed line by line, so each of its longer lines is a secret too.
func (m *masker) add(s string) {
	if len(s) < 4 { // masking "1" or "on" would shred every line and protect nothing
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets = append(m.secrets, s, base64.StdEncoding.EncodeToString([]byte("x-access-token:"+s)))
	if strings.ContainsAny(s, "\r\n") {
		for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }) {
			if l = strings.TrimSpace(l); len(l) >= 8 {
				m.secrets = append(m.secrets, l)
			}
		}
	}
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
}

// longest is the length of the longest secret: a line cut short of that past the cut may hold a whole one.
func (m *masker) longest() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.secrets) == 0 {
		return 0
	}
	return len(m.secrets[0])
}

func (m *masker) mask(s string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, sec := range m.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// maskHandler masks secrets in the message and string attributes before any handler sees them, so that no
// format (text, JSON with its escaping) can let one through.
type maskHandler struct {
	inner slog.Handler
	m     *masker
}

func (h *maskHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *maskHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.m.mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.maskAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *maskHandler) maskAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	switch a.Value.Kind() {
	case slog.KindString, slog.KindAny:
		a.Value = slog.StringValue(h.m.mask(a.Value.String()))
	case slog.KindGroup:
		group := a.Value.Group()
		masked := make([]slog.Attr, len(group))
		for i, g := range group {
			masked[i] = h.maskAttr(g)
		}
		a.Value = slog.GroupValue(masked...)
	}
	return a
}

func (h *maskHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i] = h.maskAttr(a)
	}
	return &maskHandler{inner: h.inner.WithAttrs(masked), m: h.m}
}

func (h *maskHandler) WithGroup(name string) slog.Handler {
	return &maskHandler{inner: h.inner.WithGroup(name), m: h.m}
}

// lineBudget caps how many lines of command output one build may log, so a runaway build cannot flood the
// log store. It is shared by every step of a build.
type lineBudget struct {
	mu   sync.Mutex
	left int
	hit  bool
}

// take reports whether one more line may be logged, and whether this is the first refusal (to say so once).
func (b *lineBudget) take() (ok, first bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left > 0 {
		b.left--
		return true, false
	}
	first = !b.hit
	b.hit = true
	return false, first
}

// maxLineBytes cuts very long output lines (minified bundles printed by mistake) in the log.
const maxLineBytes = 4096

// tailLines is how many of a failed step's last output lines the error carries.
const tailLines = 25

// lineWriter turns a command's output into log records, one per line, as it arrives. It keeps the last lines
// for the error message of a failed step, and those are kept even past the log line cap.
type lineWriter struct {
	log    *slog.Logger
	budget *lineBudget
	m      *masker
	buf    []byte
	tail   []string
	causes []string // lines that state a failure's cause, kept even when they scroll out of the tail
	skip   bool     // the current line was logged cut; drop the rest of it
}

// maxCauses bounds the cause lines a failed step's error carries.
const maxCauses = 8

// causeRe recognises lines in which tools state why they failed, which are often followed by pages of usage
// text or stack traces (npm ci prints its usage after "Missing: x from lock file").
var causeRe = regexp.MustCompile(`(?i)^npm (error|err!) (missing|invalid|code|engine|notsup|peer|eresolve|could not resolve|` +
	"`npm ci`" + ` can only)|^npm (error|err!) .*(from lock file|does not satisfy)|could not detect a supported production environment|` +
	`ERR_PNPM_[A-Z_]+|\bYN00(28|18|01|60)\b|is not supported|unsupported engine|requires node(\.js)? ?(version )?[v>=^~]?\d|^error(:| \[)`)

func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if w.skip {
			if i < 0 {
				break
			}
			p, w.skip = p[i+1:], false
			continue
		}
		if i >= 0 {
			w.buf = append(w.buf, p[:i]...)
			p = p[i+1:]
			w.line(string(w.buf))
			w.buf = w.buf[:0]
			continue
		}
		w.buf = append(w.buf, p...)
		p = nil
		// A line too long to keep is logged cut, but only once a secret that starts before the cut has surely
		// arrived whole, so that masking sees it; the rest of the line is dropped.
		if len(w.buf) > maxLineBytes+w.m.longest() {
			w.line(string(w.buf))
			w.buf, w.skip = w.buf[:0], true
		}
	}
	return n, nil
}

// flush logs a final line that had no newline.
func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
	w.skip = false
}

func (w *lineWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 { // progress bars: keep what the terminal would show
		s = s[i+1:]
	}
	s = w.m.mask(s) // before the cut, which could otherwise split a secret and show its first part
	if len(s) > maxLineBytes {
		s = s[:maxLineBytes] + " [line cut]"
	}
	if strings.TrimSpace(s) == "" {
		return
	}
	if len(w.causes) < maxCauses && causeRe.MatchString(s) {
		w.causes = append(w.causes, s)
	}
	w.tail = append(w.tail, s)
	if len(w.tail) > tailLines {
		w.tail = w.tail[len(w.tail)-tailLines:]
	}
	ok, first := w.budget.take()
	switch {
	case ok:
		w.log.Info(s)
	case first:
		w.log.Warn("log line cap reached: further output of this build is not logged")
	}
}
