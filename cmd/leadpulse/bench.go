package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/leadpulse/leadpulse/bench"
)

// benchCmd is `leadpulse bench` (SPEC §4): the throughput and latency suite.
// The work is in package bench; this is flags and output.
type benchCmd struct {
	Events   int           `default:"300000" placeholder:"N" help:"Throughput phase: produce N events first, then time the pipeline draining them; 0 skips it. Default: 300000."`
	Rate     []float64     `default:"5000" sep:"," placeholder:"R,..." help:"Latency phases: offered events/s, open loop (Poisson arrivals), one phase per rate; 0 skips them. Default: 5000."`
	Duration time.Duration `default:"5s" placeholder:"D" help:"Length of each latency phase. Default: 5s."`
	Samples  int           `default:"0" placeholder:"N" help:"Run each latency phase longer than --duration, until it has N samples of each latency (events applied, actions read; a p99 needs about 10000), at most 10 minutes. Default: 0 (--duration)."`

	Contacts  int     `default:"10000" placeholder:"N" help:"Simulated visitors. Default: 10000."`
	Zipf      float64 `default:"0" placeholder:"S" help:"Skew of the choice of contact: 0 uniform, above 1 Zipf (a few contacts send most events). Default: 0."`
	Mix       string  `default:"b2b" enum:"b2b,ecommerce" help:"Kind of site: b2b or ecommerce (give --rules examples/ecommerce.yaml with ecommerce). Default: b2b."`
	Anonymous float64 `default:"0.6" placeholder:"F" help:"Share of contacts that never identify. Default: 0.6."`
	Seed      int64   `default:"1" help:"Seed of the generated traffic. Default: 1."`
	Turnover  bool    `default:"true" negatable:"" help:"Visitor turnover: a simulated visitor leaves after about --lifetime events and a new one takes its place, so the live population stays at --contacts while new visitors keep arriving, as on a real site, and the actions per event stay level over a long phase. The store keeps the contacts of visitors who left, so it grows with new visitors (the state line reports it). --no-turnover: the same --contacts visitors all along, who use up their triggers' cooldowns and caps within minutes. Default: on."`
	Lifetime  int     `default:"40" placeholder:"N" help:"With --turnover: the mean events a visitor sends before leaving (exponentially distributed; it leaves at the end of a visit). Default: 40."`
	Keyed     bool    `default:"true" negatable:"" help:"Key records by contact and skip the ingest hop (--no-keyed: unkeyed records through the ingest stage). Default: keyed."`

	Transactions string `default:"on" enum:"on,off,both" help:"With --no-keyed: the ingest hop in Kafka transactions (on), without (off), or both, one run after the other, to measure their cost. Default: on."`
	Merge        string `default:"on" enum:"on,off,both" help:"Identity merging (the rules' identity: section): as the rules say (on), identity.merge false (off), or both, one run after the other, to measure its cost. Default: on."`

	Brokers []string `sep:"," placeholder:"ADDR,..." help:"Seed brokers of an external Kafka (bench topics are created and deleted there). Default: an embedded broker (kfake) over TCP in this process."`
	Redis   string   `placeholder:"ADDR" help:"Keep contact state in the Redis at ADDR (keys lpbench-<run>:*, deleted afterwards) and measure its raw write ceiling. Default: memory."`
	Rules   string   `type:"existingfile" placeholder:"FILE" help:"Rules file. Default: the bundled examples/b2b-saas.yaml."`

	RuleCopies   []int         `default:"1" sep:"," placeholder:"N" help:"Repeat every scoring rule and trigger N times (distinct ids). Default: 1."`
	Partitions   []int32       `default:"6" sep:"," placeholder:"N" help:"Partitions of the bench topics. Default: 6."`
	Batch        []int         `default:"4000" sep:"," placeholder:"N" help:"Records a partition applies per produce/commit round (stream batch_records). Default: 4000."`
	FetchMaxWait time.Duration `placeholder:"D" help:"How long the broker holds a fetch of partitions without new data (stream fetch_max_wait). Default: the pipeline's (100ms)."`

	JSON       bool   `name:"json" help:"Print the result as JSON instead of a table."`
	Matrix     bool   `help:"Run every combination of --partitions × --batch × --rule-copies (lists, e.g. --partitions 1,3,6), each with the throughput phase and a latency phase per --rate; write a CSV and charts to --out."`
	Out        string `default:"bench-out" placeholder:"DIR" help:"Directory of the --matrix CSV and charts. Default: bench-out."`
	CPUProfile string `name:"cpuprofile" placeholder:"FILE" help:"Write a CPU profile of the measured phases (go tool pprof FILE)."`
	MemProfile string `name:"memprofile" placeholder:"FILE" help:"Write an allocation profile at the end of the measured phases."`
	Trace      string `placeholder:"FILE" help:"Write an execution trace of the measured phases (go tool trace -pprof=sync FILE shows where goroutines wait)."`
	Quiet      bool   `help:"No progress lines on stderr."`
}

func (b *benchCmd) Run(e *env) error {
	cfg := bench.Config{
		Contacts:       b.Contacts,
		Zipf:           b.Zipf,
		Mix:            b.Mix,
		AnonymousShare: b.Anonymous,
		Seed:           b.Seed,
		Lifetime:       b.Lifetime,
		Unkeyed:        !b.Keyed,
		Events:         b.Events,
		Rates:          b.Rate,
		Duration:       b.Duration,
		Samples:        b.Samples,
		Brokers:        b.Brokers,
		Redis:          b.Redis,
		CPUProfile:     b.CPUProfile,
		MemProfile:     b.MemProfile,
		Trace:          b.Trace,
		FetchMaxWait:   b.FetchMaxWait,
		Log:            e.stderr,
	}
	if b.Events == 0 {
		cfg.Events = -1 // skip
		if len(b.Rate) == 1 && b.Rate[0] == 0 {
			return &exitError{code: 2, msg: "leadpulse bench: --events 0 and --rate 0 skip both phases: nothing to measure; leave out one of them (--events 0 alone measures latency, --rate 0 alone throughput)"}
		}
	}
	if b.Anonymous == 0 {
		cfg.AnonymousShare = -1 // none (0 is the default in Config)
	}
	if b.Lifetime < 1 {
		return &exitError{code: 2, msg: fmt.Sprintf("leadpulse bench: --lifetime %d: give the mean events a visitor sends before leaving, 1 or more (--no-turnover turns turnover off)", b.Lifetime)}
	}
	if !b.Turnover {
		cfg.Lifetime = -1 // off (0 is the default in Config)
	}
	if b.Quiet {
		cfg.Log = nil
	}
	if b.Rules != "" {
		data, err := os.ReadFile(b.Rules)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("leadpulse bench: --rules: %v", err)}
		}
		cfg.Rules, cfg.RulesName = data, b.Rules
	}
	if b.Matrix {
		res, err := bench.RunMatrix(e.ctx, bench.Matrix{
			Base: cfg, Partitions: b.Partitions, Batches: b.Batch, RuleCopies: b.RuleCopies, Out: b.Out,
		})
		if err != nil {
			return benchError(err)
		}
		if b.JSON {
			return res.WriteJSON(e.stdout)
		}
		return res.WriteTable(e.stdout)
	}
	if len(b.Partitions) != 1 || len(b.Batch) != 1 || len(b.RuleCopies) != 1 {
		return &exitError{code: 2, msg: "leadpulse bench: lists of --partitions, --batch or --rule-copies need --matrix; give one value each for a single run"}
	}
	cfg.Partitions, cfg.BatchRecords, cfg.RuleCopies = b.Partitions[0], b.Batch[0], b.RuleCopies[0]
	modes := map[string][]bool{"on": {false}, "off": {true}, "both": {false, true}}[b.Transactions]
	if len(modes) > 1 && b.Keyed {
		return &exitError{code: 2, msg: "leadpulse bench: --transactions both measures the ingest hop: give --no-keyed too"}
	}
	merges := map[string][]bool{"on": {false}, "off": {true}, "both": {false, true}}[b.Merge]
	if len(modes) > 1 && len(merges) > 1 {
		return &exitError{code: 2, msg: "leadpulse bench: --transactions both and --merge both: give one of them as on or off"}
	}
	type run struct{ noTxn, noMerge bool }
	var runs []run
	for _, off := range modes {
		for _, nm := range merges {
			runs = append(runs, run{off, nm})
		}
	}
	var results []*bench.Result
	for i, rn := range runs {
		cfg.NoTransactions, cfg.NoMerge = rn.noTxn, rn.noMerge
		res, err := bench.Run(e.ctx, cfg)
		if err != nil {
			return benchError(err)
		}
		results = append(results, res)
		if i > 0 && !b.JSON {
			fmt.Fprintln(e.stdout)
		}
		if b.JSON {
			err = res.WriteJSON(e.stdout)
		} else {
			err = res.WriteTable(e.stdout)
		}
		if err != nil {
			return err
		}
	}
	if b.Merge == "both" && !b.JSON && len(results) == 2 {
		fmt.Fprintln(e.stdout)
		return bench.WriteMergeComparison(e.stdout, results[0], results[1])
	}
	return nil
}

// benchError turns a bench error into an exit: 2 for a configuration the
// flags made impossible, 1 for a failed run. The package's own "bench: "
// prefix gives way to the command's.
func benchError(err error) error {
	code := 1
	if errors.Is(err, bench.ErrConfig) {
		code = 2
	}
	return &exitError{code: code, msg: "leadpulse bench: " + strings.TrimPrefix(err.Error(), "bench: ")}
}
