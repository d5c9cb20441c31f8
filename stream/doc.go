// Package stream is the live pipeline of SPEC §5 on Kafka (franz-go): it
// wires Kafka records to the one engine (engine.Partition) that replay,
// rules tests and bench also run. It knows nothing of rules syntax or state
// encoding.
//
// # Data path
//
//	events ──► ingest (group "<group>-ingest")         decode, validate, key by contact
//	   │         good: same value, headers and timestamp, key = contact ──► events.keyed
//	   │         bad:  original key/value/headers + error.* and source.* ──► events.dlq
//	   ▼
//	events.keyed ──► score (group "<group>", cooperative-sticky)
//	                   one goroutine per assigned partition, each with its own
//	                   engine.Partition and store (the shared state.Memory, or a
//	                   state.Cache over Redis); records applied in order, in batches
//	                   actions (SPEC §3 JSON, key = contact) ──► actions
//	                   bad or misrouted input ──► events.dlq
//
// With Config.InputKeyed the ingest hop is skipped and the scoring stage reads
// the events topic itself; every producer must then key records by contact
// with Kafka's default partitioner (murmur2: the Java client, franz-go, and
// librdkafka/kcat only with `-X partitioner=murmur2_random`; kcat's default,
// consistent_random, is CRC32 and puts contacts elsewhere). A record found in
// the wrong partition goes to the DLQ with reason "misrouted" rather than be
// scored in two places.
//
// # Exactly once
//
// Ingest → keyed topic: each poll is one Kafka transaction (franz-go's
// GroupTransactSession): the keyed records, the dead letters and the input
// offsets commit together or not at all. A crash leaves an open transaction
// that the broker aborts (at once when the process comes back with its
// Config.TransactionalID, else after Config.TransactionTimeout); the scoring
// stage reads read_committed, so it never sees the aborted copies.
//
// Keyed topic → state: per batch, a partition applies its records and hands
// the actions and dead letters to the producer; it goes on with the next
// batch while Kafka acknowledges them (output.go), but commits the store
// (Redis: one pipelined compare-and-set as of the batch's last offset) only
// once every output before it is acknowledged, and only then notes the
// offset as committable (memory: once the batch's output and all before it
// are acknowledged): the noted
// offsets of every partition are committed together in one asynchronous
// request at most every Config.CommitInterval (100ms), and synchronously
// when a partition is revoked or the stage stops (a synchronous commit per
// batch cost a round trip per batch and queued the workers behind each
// other on the client's commit order). Every contact remembers the position
// of the last record applied to it (state.Contact.Applied), so a crash —
// which reads again what follows the last committed offset — skips, record
// by record, what the committed state already holds (engine ApplyAt), with or
// without messageId; the messageId dedupe is left for producers' own
// repeats. The skipped records still move the partition's clock.
//
// State → actions topic → sinks: at least once. A record re-read after a
// crash whose contact was not yet committed is applied again from the
// committed state and emits the same actions with the same deterministic
// ids; the dispatch stage delivers an id once (sinks.Deduper). Bad input
// never blocks a partition: it is dead-lettered and its offset committed
// with the batch.
//
// # Live time
//
// A partition's clock is the highest event time it has read (engine). When
// the partition is caught up — nothing queued, and the next offset to apply
// equals the partition's end offset, asked of the broker — and a timer is due
// by the wall clock (Config.Clock) less Config.TimerDelay, the clock advances
// to that time and the timers fire: within TimerDelay + Tick (about 0.7s by
// default) of their due time, and never while a record that could cancel them
// is unread in the partition. With Redis, a newly assigned partition indexes
// the stored timers due within TimerHorizon and keeps loading them ahead of
// its clock; with memory, it indexes the pending timers of its contacts.
//
// # Goroutines and ownership
//
//   - Pipeline.Run's caller: waits for the two stages.
//   - ingest: one poll loop; decode, produce, wait for the acknowledgements,
//     commit, AllowRebalance (BlockRebalanceOnPoll: a rebalance waits for the
//     commit, so a revoked partition is never committed).
//   - score poll loop: polls and pushes each partition's records to its
//     worker's bounded queue. A queue at Config.QueueRecords pauses fetching
//     of that partition (PauseFetchPartitions) until it is half empty.
//   - score group callbacks (franz-go's goroutine): start a worker per
//     assigned partition; on revoke tell the worker to drain (apply what is
//     queued, produce, commit) and join it before returning; on loss tell it
//     to drop its queue without committing and join it.
//   - one worker per assigned partition: owns its engine.Partition, its
//     store (or its part of the shared memory store: contacts are
//     partitioned), its offsets. Nothing else touches them. franz-go's
//     produce callbacks only count a sent batch's acknowledgements and wake
//     the worker, which settles the batch (output.go).
//
// Locks: scorer.mu (the worker map) is never held while calling into a
// worker; worker.mu (the queue) is held across Pause/ResumeFetchPartitions
// so that a pause and a resume cannot cross.
//
// Dispatch (NewDispatch) is a third consumer group on the actions topic:
// its poll loop routes each action to its sink's lane (a queue, MaxInFlight
// workers keyed by contact), a committer commits each partition up to its
// lowest unsettled action, and the revoke callback commits what is settled
// and drops the rest of the revoked partitions.
//
// # Failures
//
// A record above Config.MaxEventBytes is dead-lettered as too_large (its
// first DeadLetterHeadBytes kept, HeaderOriginalSize) before anything is
// produced; a keyed record Kafka refuses is dead-lettered with the refusal
// (too_large, produce_failed); retriable produce errors are retried with
// backoff. Every client reports to one health tracker through franz-go
// hooks: no broker answer, or fetch errors, for Config.UnreachableAfter
// make NotReady return ErrUnreachable with the reason, and log it. Topic
// creation and the first ping are retried while the brokers do not answer.
// Dead letters are stamped when produced, the source time in
// HeaderSourceTimestamp.
//
// On shutdown (ctx done, SIGTERM/SIGINT in the commands) the poll loops stop,
// every worker drains, the groups are left; I/O of the drain is bounded by
// Config.DrainTimeout.
//
// # Rules reload, inspection, erasure
//
// Pipeline.SetRules hands new rules to the partitions; each switches at its
// next batch boundary, when everything before is committed (a new
// engine.Partition keeping the clock, a timer index rebuilt from the stored
// timers; contacts re-align to the new rules as they are used).
// Pipeline.Inspect reads a contact: from Redis as committed, or, with
// memory, by asking the owning worker between two batches (worker.reqs), so
// that no other goroutine reads a contact a worker may be changing.
// Pipeline.Forget writes a control record (header leadpulse-control:
// forget, key = the contact) to the contact's partition of the scoring
// topic; whichever process owns the partition erases the contact
// (Store.Delete) in order with its events, and Forget waits until the
// group has committed past it. A user's merged anonymous ids are erased
// after it: the user's owner sends an unlink record to each id's partition.
//
// # Identity across partitions
//
// SPEC §6 live (identity.go, engine/live.go, DESIGN.md): a linking event
// parks its user (records held, offset commits stop at the first) and sends
// a link-request to the anonymous id's partition; that owner retires the id
// (a tombstone naming the user) and sends its state back (handover), or a
// conflict (link-refused); the user's owner merges and applies the held
// records. Later events carrying only a retired id are forwarded to the
// user. All are control records on the scoring topic; every step is
// recognised when repeated after a crash. Config.HandoverTimeout bounds the
// wait.
//
// # Metrics
//
// Registered with the prometheus.Registerer given to NewMetrics:
//
//	leadpulse_events_in_total{stage}                  records read, stage = ingest | score | dispatch
//	leadpulse_events_bad_total{stage,reason}          dead-lettered input by event.Reason or "misrouted"
//	leadpulse_event_to_action_seconds                 histogram: record timestamp → action acknowledged
//	leadpulse_timer_delay_seconds                     histogram: due time → action acknowledged, wall-clock timers
//	leadpulse_consumer_lag_records{topic,partition}   high watermark − next offset
//	leadpulse_partition_queue_records{partition}      records queued for a worker
//	leadpulse_partition_queue_capacity_records        queue size at which fetching pauses
//	leadpulse_fetch_pauses_total                      times a full queue paused fetching
//	leadpulse_trigger_firings_total{trigger}          firings past their cooldown
//	leadpulse_actions_produced_total{action}          action records acknowledged on the actions topic
//	leadpulse_actions_suppressed_total                cooldown edges, false guards, caps reached
//	leadpulse_store_commits_total{result}             ok | error | conflict
//	leadpulse_store_cas_rejections_total              contact writes refused as stale by the store
//	leadpulse_records_skipped_total                   records read again whose contact already held them
//	leadpulse_offset_commits_total{stage,result}      ok | error (scoring: one per coalesced request)
//	leadpulse_produce_errors_total{topic}             records Kafka did not acknowledge
//	leadpulse_dispatch_queued_actions{sink}           actions read by dispatch and not yet settled, per sink lane
//	leadpulse_dead_letters_refused_total              input records Kafka refused as keyed records and as cut dead letters (logged, skipped)
//	leadpulse_score_batch_seconds                     histogram: apply + produce + store commit of one batch
//	leadpulse_score_partitions                        partitions assigned to this process
//	leadpulse_partitions_rebalanced_total{stage,kind} assigned | revoked | lost | drained
//	leadpulse_identity_links_total                    anonymous ids linked to a user
//	leadpulse_identity_merges_total                   links that brought state
//	leadpulse_identity_conflicts_total{kind}          merged_elsewhere | known | max_anonymous
//	leadpulse_identity_handover_seconds               histogram: link-request produced → answer applied
//	leadpulse_identity_parked_contacts                users waiting for a hand-over
//	leadpulse_identity_forwarded_total                events of merged ids forwarded to their user
//	leadpulse_identity_held_events_total              records of a parked user held until its hand-over completes
//	leadpulse_identity_links_dropped_total            linking events not queued behind a late hand-over (queue full)
//	leadpulse_identity_handover_timeouts_total        hand-overs given up after HandoverTimeout
package stream
