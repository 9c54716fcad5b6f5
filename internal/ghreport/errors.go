package ghreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v66/github"

	"github.com/ferryhq/ferry/internal/ferry"
)

// perm names the permission a call needs, so that a 403 tells the operator which one to grant.
type perm int

const (
	permNone perm = iota
	permDeployments
	permPullRequests
	permStatuses
	permAdministration
	permChecks
)

func (p perm) hint() string {
	switch p {
	case permDeployments:
		return "the App lacks the Deployments (read and write) permission, or the workflow lacks `permissions: deployments: write`"
	case permPullRequests:
		return "the App lacks the Pull requests (read and write) permission, or the workflow lacks `permissions: pull-requests: write`"
	case permAdministration:
		return "the App lacks the Administration (read and write) permission, which deleting an environment needs"
	case permChecks:
		return "the App lacks the Checks (read and write) permission, or the workflow lacks `permissions: checks: write`"
	case permStatuses:
		return "the App lacks the Commit statuses (read and write) permission, or the workflow lacks `permissions: statuses: write`"
	}
	return "the App or token lacks a permission for this call"
}

// retry runs fn until it succeeds, fails for good, or the attempts are spent. It waits out short rate limits and
// backs off on 5xx and network errors; every other failure returns at once. The final error is classified.
func (r *Reporter) retry(ctx context.Context, op string, p perm, fn func(ctx context.Context) error) error {
	backoff := r.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		closeTokenResponse(err)
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		wait, ok := r.retryAfter(err)
		if !ok || attempt >= r.cfg.Attempts {
			return classify(op, p, err)
		}
		if wait < 0 {
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
			backoff *= 2
		}
		r.cfg.Logger.WarnContext(ctx, "GitHub call failed, retrying", "op", op, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
}

// retryAfter says whether err is worth another attempt and how long to wait first; a negative wait means "back
// off". Rate limits wait until their reset, but only when that is within MaxRateLimitWait.
func (r *Reporter) retryAfter(err error) (time.Duration, bool) {
	if d, limited := rateLimitWait(err); limited {
		if d < 0 {
			d = 0
		}
		return d, d <= r.cfg.MaxRateLimitWait
	}
	status, ok := statusOf(err)
	if !ok {
		// No HTTP answer at all: the network or GitHub's front door failed.
		return -1, !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	if status >= 500 {
		return -1, true
	}
	return 0, false
}

// rateLimitWait returns how long GitHub asked us to wait, if err is a rate limit. Primary limits reset at a
// whole second, so a second is added as go-github itself does.
func rateLimitWait(err error) (time.Duration, bool) {
	var rl *github.RateLimitError
	if errors.As(err, &rl) {
		return time.Until(rl.Rate.Reset.Time) + time.Second, true
	}
	var ab *github.AbuseRateLimitError
	if errors.As(err, &ab) {
		if ab.RetryAfter != nil {
			return *ab.RetryAfter, true
		}
		return time.Minute, true
	}
	if resp := responseOf(err); resp != nil && (resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-RateLimit-Remaining") == "0")) {
		if v, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			return time.Duration(v) * time.Second, true
		}
		if v, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return time.Until(time.Unix(v, 0)) + time.Second, true
		}
		return time.Minute, true
	}
	return 0, false
}

// closeTokenResponse releases the connection behind a failed token refresh: ghinstallation hands the response
// to the caller unread, for inspection.
func closeTokenResponse(err error) {
	var he *ghinstallation.HTTPError
	if errors.As(err, &he) && he.Response != nil && he.Response.Body != nil {
		io.Copy(io.Discard, io.LimitReader(he.Response.Body, 1<<16))
		he.Response.Body.Close()
	}
}

// responseOf finds the HTTP response behind err: a go-github error, or ghinstallation's token refresh error.
func responseOf(err error) *http.Response {
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response
	}
	var he *ghinstallation.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response
	}
	return nil
}

func statusOf(err error) (int, bool) {
	if resp := responseOf(err); resp != nil {
		return resp.StatusCode, true
	}
	var rl *github.RateLimitError
	var ab *github.AbuseRateLimitError
	if errors.As(err, &rl) || errors.As(err, &ab) {
		return http.StatusForbidden, true
	}
	return 0, false
}

// classify turns a GitHub failure into Ferry's error type with a message that says what to do next.
func classify(op string, p perm, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if d, limited := rateLimitWait(err); limited {
		return fail(ferry.EUNAVAILABLE, err, "%s: GitHub rate limit reached, retry in %s", op, d.Round(time.Second))
	}
	var he *ghinstallation.HTTPError
	tokenErr := errors.As(err, &he)
	status, ok := statusOf(err)
	if !ok {
		return fail(ferry.EUNAVAILABLE, err, "%s: GitHub unreachable", op)
	}
	if tokenErr {
		switch {
		case status == http.StatusUnauthorized:
			return fail(ferry.EUNAUTHORIZED, err, "%s: GitHub rejected the App's JWT: check --github-app-id and --github-private-key-file", op)
		case status == http.StatusNotFound:
			return fail(ferry.ENOTFOUND, err, "%s: installation %d not found: the App was uninstalled or belongs to another App id", op, he.InstallationID)
		case status == http.StatusForbidden:
			return fail(ferry.EFORBIDDEN, err, "%s: installation %d may not get a token (suspended?)", op, he.InstallationID)
		}
	}
	msg := ""
	var er *github.ErrorResponse
	if errors.As(err, &er) {
		msg = er.Message
		for _, e := range er.Errors {
			if e.Message != "" {
				msg += "; " + e.Message
			} else if e.Code != "" {
				msg += fmt.Sprintf("; %s %s", e.Field, e.Code)
			}
		}
	}
	msg = strings.TrimSpace(msg)
	switch {
	case status >= 500:
		return fail(ferry.EUNAVAILABLE, err, "%s: GitHub is failing (HTTP %d)", op, status)
	case status == http.StatusUnauthorized:
		return fail(ferry.EUNAUTHORIZED, err, "%s: GitHub rejected the credentials (expired or revoked token, or a wrong App key)", op)
	case status == http.StatusForbidden:
		return fail(ferry.EFORBIDDEN, err, "%s: %s", op, p.hint())
	case status == http.StatusNotFound:
		return fail(ferry.ENOTFOUND, err, "%s: not found: the repository does not exist or the App is not installed on it (or the token cannot see it)", op)
	case status == http.StatusUnprocessableEntity || status == http.StatusConflict:
		return fail(ferry.EINVALID, err, "%s: GitHub refused the request (%s)", op, msg)
	}
	return fail(ferry.EINTERNAL, err, "%s: unexpected GitHub answer (HTTP %d)", op, status)
}

// fail builds Ferry's error with a user-facing message and err kept as the cause (shown after the message).
func fail(code string, err error, format string, args ...any) error {
	return &ferry.Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}
