// Package sinks delivers action records (SPEC §3) to the systems that act
// on them — a sales team's webhook or Slack channel, a Kafka topic for the
// email platform, a Redis stream, standard output — once each, and is the
// dispatch stage of SPEC §5 minus its Kafka consumer.
//
// # The contract
//
// A Sink is two methods: Write(ctx, batch) makes one attempt to deliver a
// batch of Actions and classifies its failures (ErrTransient: retry;
// ErrPermanent: dead letter; a *BatchError when the actions fared
// differently), Close releases it. One file per sink: webhook.go, kafka.go,
// redisstream.go, stdout.go; conformance_test.go runs the same suite —
// delivery, retry after a transient failure, idempotency by action id,
// drain on Close — against each of them with its real peer (an HTTP
// server, kfake, a redis-server).
//
// Everything else is the Dispatcher's, the same for every sink:
//
//	actions topic ─► consumer (package stream) ─► Dispatcher.Dispatch(ctx, actions...)
//	                                                │ route: Record.Sink, else Options.Default, else dead letter
//	                                                │ Deduper.Delivered? ─► skip (duplicates_total)
//	                                                │ rate limit ─► concurrency slot ─► Sink.Write
//	                                                │   ok ─► Deduper.Remember
//	                                                │   transient ─► backoff or Retry-After ─► again, within Retry.For/Attempts
//	                                                │   permanent, or budget spent ─► Options.DeadLetter(ctx, action, reason)
//	                                                ▼
//	                                  nil: all settled ─► the consumer commits
//
// # Delivery once
//
// Dispatch returns nil only when every action it was given is delivered,
// known delivered, or dead-lettered; the consumer commits offsets only
// then, so an action is never lost: at worst it is read again. Reading it
// again does not deliver it again: the Deduper remembers delivered ids
// (RedisDedupe: key leadpulse:delivered:{ID}, SET NX with a 7-day TTL,
// shared by all processes; MemoryDedupe: the last 100,000 ids, for dev),
// and concurrent Dispatch calls with the same id deliver it once.
//
// The id is remembered after the delivery, never before (remembering first
// would lose the action if the delivery then failed), which leaves one
// window: a crash, or a failed Remember, between a delivery and its
// Remember delivers the action again when it is replayed. Each sink hands
// receivers the action id to close that window themselves: the webhook's
// Idempotency-Key header, the Kafka record header idempotency-key, the
// Redis stream entry's id field, the record's id. The redis-stream sink
// closes it on its own: it appends an id only once (a marker key in the
// stream's hash slot, checked and set by the same script as the XADD).
//
// # Dead letters
//
// An action that cannot be delivered — refused by its sink (reason
// rejected), failing past its retry budget (retries-exhausted), naming no
// configured sink when there is no default (unknown-sink), or without an
// id (invalid) — goes to Options.DeadLetter with the reason as an error
// (errors.Is ErrPermanent, ErrRetriesExhausted, ErrUnknownSink,
// ErrInvalidAction; errors.As *StatusError for a webhook's reply).
// KafkaDeadLetter is a ready DeadLetter producing to a topic such as
// actions.dlq, with the headers error.reason, error.message and, when
// Action.Origin is the *kgo.Record read, source.topic/partition/offset/timestamp
// (the dead letter itself is stamped when produced). A
// value of the actions topic that does not decode is the consumer's to
// dead-letter: DecodeAction's error says so (ErrInvalidAction).
//
// # Webhook signatures
//
// A webhook with a secret signs each request:
//
//	X-Leadpulse-Timestamp: 1767225600                     (Unix seconds, when sent)
//	X-Leadpulse-Signature: sha256=<hex HMAC-SHA256(secret, "1767225600" + "." + body)>
//
// A receiver recomputes the HMAC over the timestamp header's text, a dot
// and the raw body as received, compares it in constant time, and refuses
// a timestamp more than a few minutes from its clock (a replayed request).
// VerifySignature does exactly that; DefaultSignatureTolerance is 5
// minutes. Every retry is signed anew with its own timestamp.
//
// # Retries
//
// Transient failures are retried with exponential backoff and jitter
// (github.com/cenkalti/backoff/v5: Retry.Initial, doubling up to
// Retry.Max, each wait ±50%), or after the wait a webhook asked for with
// Retry-After on 429 or 503 (seconds or an HTTP date, at most
// Retry.MaxRetryAfter). When an action has been failing for Retry.For (10
// minutes by default) or Retry.Attempts attempts, it goes to the dead
// letter with reason retries-exhausted and the last failure. A negative
// Retry.For retries until delivered or shut down: the sink then holds back
// its partition's commits for the whole outage instead of dead-lettering.
//
// # Concurrency and shutdown
//
// Per sink, at most Policy.Concurrency Writes run at once (over all
// Dispatch calls) and Policy.Rate limits the actions written. A slow or
// hanging sink fills only its own slots; the other sinks keep flowing. A
// Dispatch call returns when all its actions are settled, so a caller that
// hands one call the actions of several sinks waits for the slowest; the
// timeout of a sink bounds each attempt.
//
// Close stops new calls, waits for the calls in progress to settle their
// actions (drain), and closes the sinks. If its context ends first, the
// work in flight is cancelled and the calls return errors matching
// ErrClosed: their records are not committed, and are read again after the
// restart.
//
// # Metrics
//
// Registered with Options.Registerer; every series of a configured sink
// exists from the start, at zero:
//
//	leadpulse_sink_delivered_total{sink}               actions delivered
//	leadpulse_sink_retried_total{sink}                 retries after a transient failure (one per action and retry)
//	leadpulse_sink_failed_total{sink,kind}             failed attempts per action, kind = transient | permanent
//	leadpulse_sink_dead_lettered_total{sink,reason}    dead letters, reason = rejected | retries-exhausted | unknown-sink | invalid
//	                                                   (sink = "unrouted" when no sink took the action)
//	leadpulse_sink_duplicates_total{sink}              actions skipped because their id was already delivered
//	leadpulse_sink_delivery_seconds{sink}              histogram: Dispatch → delivered, waits and retries included
//	leadpulse_sink_in_flight_actions{sink}             actions held for the sink: waiting, being written, or between retries
//	leadpulse_sink_dedupe_errors_total{op}             failed Deduper calls, op = lookup (retried) | remember (may deliver twice on replay)
package sinks
