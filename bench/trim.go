package bench

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// trimSegmentBytes is the segment size of the bench topics during the
// latency phases (trimLoop).
const trimSegmentBytes = "1048576"

// trimEvery is how often the latency phases delete the records every reader
// has consumed from the embedded broker.
const trimEvery = time.Second

// trimLoop deletes, every trimEvery until ctx ends, the records of the
// embedded broker that every reader has consumed: the input topics up to
// their consumer groups' committed offsets, the actions topic up to where
// the action reader is.
//
// Why: kfake keeps every record in this process' heap, where a real broker
// keeps them on disk in another process. A latency phase of a few minutes at
// 20,000 events/s left gigabytes of records there (RSS 6.8 GB after 10
// minutes), which the pipeline's garbage collector marked on every cycle,
// beside the events it was measuring: a cost of embedding the broker, not
// of the pipeline. Nothing the pipeline reads is deleted before it has
// committed it, so it does the same work as without the trim.
func (r *run) trimLoop(ctx context.Context) {
	// kfake frees a segment only whole, and rolls one at segment.bytes
	// (100 MiB by default, about 25 s of a partition at 20,000 events/s):
	// small ones from here on, so that what is deleted leaves the heap.
	// Set now, not when the topics are made, so that the drain runs on the
	// broker as it always did.
	topics := []string{r.scfg.Topics.Events, r.scfg.Topics.Actions}
	if r.cfg.Unkeyed {
		topics = append(topics, r.scfg.Topics.Keyed)
	}
	if _, err := r.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.bytes", Value: kadm.StringPtr(trimSegmentBytes)}},
		topics...); err != nil {
		r.logf("could not set segment.bytes on the bench topics (the latency phases keep their records in the heap): %v", err)
	}
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.trimConsumed(ctx)
	}
}

// trimConsumed deletes what every reader has consumed, once.
func (r *run) trimConsumed(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	upTo := kadm.Offsets{}
	add := func(topic string, p int32, o int64) {
		if o > 0 {
			upTo.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
		}
	}
	for _, s := range r.mon.stages {
		if s.topic == r.scfg.Topics.Events && r.cfg.Events <= 0 {
			continue // the raw consume ceiling reads them after the phases
		}
		resp, err := r.adm.FetchOffsets(ctx, s.group)
		if err != nil {
			return
		}
		resp.Each(func(o kadm.OffsetResponse) {
			if o.Topic == s.topic && o.Err == nil {
				add(o.Topic, o.Partition, o.At)
			}
		})
	}
	for p, o := range r.col.positions() {
		add(r.scfg.Topics.Actions, p, o)
	}
	if len(upTo) == 0 {
		return
	}
	_, _ = r.adm.DeleteRecords(ctx, upTo) // best effort: the next tick tries again
}
