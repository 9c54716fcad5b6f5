package jobs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ferryhq/ferry/internal/ghreport"
)

// HookDeliveries is what the redelivery job needs of the GitHub App: its recent webhook deliveries and a way to
// have one sent again. *ghreport.App satisfies it.
type HookDeliveries interface {
	HookDeliveries(ctx context.Context, p ghreport.HookDeliveriesParams) ([]ghreport.HookDelivery, error)
	HookRedeliver(ctx context.Context, deliveryID int64) error
}

var _ HookDeliveries = (*ghreport.App)(nil)

// RedeliverArgs asks for the App's webhook deliveries that Ferry never accepted to be sent again. GitHub keeps
// a delivery that failed (Ferry was down, timed out or answered 5xx) but never retries it by itself.
type RedeliverArgs struct{}

// Kind is the River job kind.
func (RedeliverArgs) Kind() string { return "webhook_redeliver" }

// InsertOpts: one run at a time across replicas (River's periodic jobs are inserted by the elected leader
// only, and uniqueness keeps a slow run from overlapping the next); a failed run waits for the next period.
func (RedeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: river.QueueDefault, MaxAttempts: 1, UniqueOpts: river.UniqueOpts{
		ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable},
	}}
}

// maxAttemptsPerDelivery is how many failed attempts of one GUID GitHub may show before Ferry stops asking
// for more: a delivery that fails every time (a bug in intake, a payload it cannot store) is a poison pill.
const maxAttemptsPerDelivery = 5

// redeliverWorker lists the recent deliveries, oldest first finds every GUID that neither intake recorded nor
// any attempt delivered (every attempt got no answer or a 5xx: a 4xx would be refused again), and asks GitHub
// to send each once more, at most RedeliverMax per run. Intake's dedup by GUID makes it idempotent: a delivery
// that arrives twice (two replicas' runs, or GitHub's own answer racing this one) is built once.
type redeliverWorker struct {
	river.WorkerDefaults[RedeliverArgs]
	*workerBase
}

func (w *redeliverWorker) Work(ctx context.Context, job *river.Job[RedeliverArgs]) error {
	if w.deps.Deliveries == nil {
		return nil
	}
	log := w.deps.Logger.With("job", job.ID)
	list, err := w.deps.Deliveries.HookDeliveries(ctx, ghreport.HookDeliveriesParams{
		Since: time.Now().Add(-w.deps.RedeliverWindow), MaxPages: w.deps.RedeliverMaxPages})
	if err != nil {
		w.m.redeliveries.WithLabelValues("list_failed").Inc()
		return fmt.Errorf("list webhook deliveries: %w", err)
	}
	type guidState struct {
		first    ghreport.HookDelivery // the oldest attempt: its time orders the redeliveries
		latest   ghreport.HookDelivery // the attempt to redeliver
		answered bool                  // some attempt got a 2xx-4xx answer
		attempts int
	}
	byGUID := map[string]*guidState{}
	for _, d := range list {
		if d.GUID == "" || d.ID == 0 {
			continue
		}
		g := byGUID[d.GUID]
		if g == nil {
			g = &guidState{first: d, latest: d}
			byGUID[d.GUID] = g
		}
		g.attempts++
		if earlier(d, g.first) {
			g.first = d
		}
		if earlier(g.latest, d) {
			g.latest = d
		}
		if d.StatusCode > 0 && d.StatusCode < 500 {
			g.answered = true
		}
	}
	guids := make([]string, 0, len(byGUID))
	for guid := range byGUID {
		guids = append(guids, guid)
	}
	known, err := w.deps.Store.WebhookDeliveriesKnown(ctx, guids)
	if err != nil {
		return err
	}
	var missed []*guidState
	for guid, g := range byGUID {
		switch {
		case known[guid] || g.answered:
		case g.attempts >= maxAttemptsPerDelivery:
			w.m.redeliveries.WithLabelValues("gave_up").Inc()
			log.WarnContext(ctx, "webhook delivery failed every time; not asking again", "guid", guid, "event", g.first.Event, "attempts", g.attempts)
		default:
			missed = append(missed, g)
		}
	}
	sort.Slice(missed, func(i, j int) bool { return earlier(missed[i].first, missed[j].first) })
	requested := 0
	for _, g := range missed {
		if requested == w.deps.RedeliverMax {
			log.InfoContext(ctx, "webhook redelivery bound reached; the rest waits for the next run", "left", len(missed)-requested)
			break
		}
		if err := w.deps.Deliveries.HookRedeliver(ctx, g.latest.ID); err != nil {
			w.m.redeliveries.WithLabelValues("failed").Inc()
			log.WarnContext(ctx, "ask GitHub to redeliver a webhook", "guid", g.first.GUID, "delivery", g.latest.ID, "err", err)
			continue
		}
		requested++
		w.m.redeliveries.WithLabelValues("requested").Inc()
		log.InfoContext(ctx, "webhook redelivery requested", "guid", g.first.GUID, "event", g.first.Event,
			"action", g.first.Action, "delivered_at", g.first.DeliveredAt, "attempts", g.attempts)
	}
	if requested > 0 || len(missed) > 0 {
		log.InfoContext(ctx, "missed webhook deliveries", "found", len(missed), "redelivery_requested", requested)
	}
	w.m.jobs.WithLabelValues(job.Kind, "ok").Inc()
	return nil
}

// earlier orders delivery attempts by time, then by id (GitHub's ids grow with time, and its times have
// whole seconds).
func earlier(a, b ghreport.HookDelivery) bool {
	if !a.DeliveredAt.Equal(b.DeliveredAt) {
		return a.DeliveredAt.Before(b.DeliveredAt)
	}
	return a.ID < b.ID
}
