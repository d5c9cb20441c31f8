package bench

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"gonum.org/v1/plot" // charts of the matrix (PNG and SVG), drawn by a plotting library rather than by hand
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Matrix is a series of runs over every combination of partitions × batch
// size × rule copies; each run has the throughput phase and a latency phase
// per rate of Base.Rates (the offered-rate axis).
type Matrix struct {
	// Base is every run's configuration; the lists below override its
	// Partitions, BatchRecords and RuleCopies.
	Base       Config
	Partitions []int32 // default: [Base.Partitions]
	Batches    []int   // default: [Base.BatchRecords]
	RuleCopies []int   // default: [Base.RuleCopies]
	// Out is the directory the CSV and the charts are written to; it is
	// created if missing. default: "bench-out"
	Out string
}

// MatrixResult is the runs of a Matrix and the files written.
type MatrixResult struct {
	Runs  []*Result `json:"runs"`
	CSV   string    `json:"csv"`
	Chart []string  `json:"charts"`
}

// RunMatrix runs m and writes Out/matrix.csv (one row per phase of each
// run), Out/throughput.{png,svg} (events/s of each configuration beside its
// raw consume ceiling) and Out/latency.{png,svg} (p99 and p50 latency
// against offered rate, a line per configuration).
func RunMatrix(ctx context.Context, m Matrix) (*MatrixResult, error) {
	base, err := m.Base.validate()
	if err != nil {
		return nil, err
	}
	if len(m.Partitions) == 0 {
		m.Partitions = []int32{base.Partitions}
	}
	if len(m.Batches) == 0 {
		m.Batches = []int{base.BatchRecords}
	}
	if len(m.RuleCopies) == 0 {
		m.RuleCopies = []int{base.RuleCopies}
	}
	if m.Out == "" {
		m.Out = "bench-out"
	}
	if err := os.MkdirAll(m.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: matrix output: %w", err)
	}
	out := &MatrixResult{}
	total := len(m.Partitions) * len(m.Batches) * len(m.RuleCopies)
	i := 0
	for _, p := range m.Partitions {
		for _, b := range m.Batches {
			for _, rc := range m.RuleCopies {
				i++
				cfg := m.Base
				cfg.Partitions, cfg.BatchRecords, cfg.RuleCopies = p, b, rc
				cfg.CPUProfile, cfg.MemProfile, cfg.Trace = "", "", ""
				if cfg.Log != nil {
					fmt.Fprintf(cfg.Log, "bench: matrix run %d of %d: %d partitions, batch %d, rules ×%d\n", i, total, p, b, rc)
				}
				res, err := Run(ctx, cfg)
				if err != nil {
					return nil, fmt.Errorf("bench: matrix run %d partitions, batch %d, rules ×%d: %w", p, b, rc, err)
				}
				out.Runs = append(out.Runs, res)
			}
		}
	}
	out.CSV = filepath.Join(m.Out, "matrix.csv")
	if err := writeCSV(out.CSV, out.Runs); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		draw func([]*Result) (*plot.Plot, error)
	}{{"throughput", throughputChart}, {"latency", latencyChart}} {
		pl, err := f.draw(out.Runs)
		if err != nil {
			return nil, fmt.Errorf("bench: %s chart: %w", f.name, err)
		}
		if pl == nil {
			continue
		}
		for _, ext := range []string{".png", ".svg"} {
			path := filepath.Join(m.Out, f.name+ext)
			if err := pl.Save(22*vg.Centimeter, 13*vg.Centimeter, path); err != nil {
				return nil, fmt.Errorf("bench: %s chart: %w", f.name, err)
			}
			out.Chart = append(out.Chart, path)
		}
	}
	return out, nil
}

// label names a run's configuration in charts and tables.
func label(r *Result) string {
	return fmt.Sprintf("p%d b%d r×%d", r.Partitions, r.Batch, r.RuleCopies)
}

var csvHeader = []string{
	"partitions", "batch_records", "rule_copies", "triggers", "scoring_rules", "store", "keyed",
	"phase", "offered_events_per_sec", "events", "events_per_sec", "ceiling_events_per_sec", "ratio",
	"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "hop_p99_ms",
	"cpu_us_per_event", "alloc_bytes_per_event", "peak_heap_bytes", "peak_rss_bytes", "lag_max_records",
	"redis_write_round_trips_per_batch", "redis_contacts_written_per_sec", "redis_ceiling_per_sec",
}

func writeCSV(path string, runs []*Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: matrix csv: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write(csvHeader)
	ff := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range runs {
		phases := r.Rates
		if r.Drain != nil {
			phases = append([]*Phase{r.Drain}, phases...)
		}
		for _, ph := range phases {
			// No actions, no latency: empty cells, not zeros.
			lat := []string{"", "", "", "", ""}
			if l := ph.LatencyMS; l != nil && l.Count > 0 {
				lat = []string{ff(l.P50), ff(l.P90), ff(l.P99), ff(l.P999), ff(l.Max)}
			}
			hop := ""
			if ph.HopFloorMS != nil {
				hop = ff(ph.HopFloorMS.P99)
			}
			ceil := ""
			if ph.Name == "drain" && r.Ceiling != nil {
				ceil = ff(r.Ceiling.PerSec)
			}
			rt, wps, rc := "", "", ""
			if ph.Redis != nil {
				rt, wps = ff(ph.Redis.WriteRoundTripsPerBatch), ff(ph.Redis.WrittenPerSec)
				if r.Redis != nil && r.Redis.Ceiling != nil {
					rc = ff(r.Redis.Ceiling.PerSec)
				}
			}
			ratioS := ""
			if ceil != "" {
				ratioS = ff(ratio(ph.EventsPerSec, r.Ceiling.PerSec))
			}
			row := []string{
				strconv.Itoa(r.Partitions), strconv.Itoa(r.Batch), strconv.Itoa(r.RuleCopies),
				strconv.Itoa(r.Triggers), strconv.Itoa(r.Scoring), r.Store, strconv.FormatBool(r.Keyed),
				ph.Name, ff(ph.OfferedPerSec), strconv.FormatInt(ph.Events, 10), ff(ph.EventsPerSec), ceil, ratioS,
			}
			row = append(row, lat...)
			row = append(row, hop,
				ff(ph.CPUMicrosPerEvent), ff(ph.AllocBytesPerEvent),
				strconv.FormatUint(ph.PeakHeapBytes, 10), strconv.FormatUint(ph.PeakRSSBytes, 10), strconv.FormatInt(ph.LagMax, 10),
				rt, wps, rc)
			_ = w.Write(row)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("bench: matrix csv: %w", err)
	}
	return f.Close()
}

// throughputChart: a bar per configuration for the pipeline's sustained
// events/s, labelled with its share of the configuration's raw consume
// ceiling (the ceiling itself is an order of magnitude higher, so it is
// written rather than drawn).
func throughputChart(runs []*Result) (*plot.Plot, error) {
	var (
		pipe   plotter.Values
		names  []string
		labels plotter.XYLabels
		top    float64
	)
	for _, r := range runs {
		if r.Drain == nil {
			continue
		}
		x := float64(len(names))
		names = append(names, label(r))
		pipe = append(pipe, r.Drain.EventsPerSec)
		top = max(top, r.Drain.EventsPerSec)
		text := num(r.Drain.EventsPerSec)
		if r.Ceiling != nil {
			text += fmt.Sprintf("\n%.2f of %s", ratio(r.Drain.EventsPerSec, r.Ceiling.PerSec), num(r.Ceiling.PerSec))
		}
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: r.Drain.EventsPerSec})
		labels.Labels = append(labels.Labels, text)
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Sustained throughput (%s store, %s)\nlabels: events/s, then the share of the raw consume ceiling of the same records", runs[0].Store, runs[0].Broker)
	p.Y.Label.Text = "events/s"
	p.Y.Min, p.Y.Max = 0, top*1.3
	bars, err := plotter.NewBarChart(pipe, vg.Points(28))
	if err != nil {
		return nil, err
	}
	bars.Color = plotutil.Color(0)
	bars.LineStyle.Width = 0
	lbl, err := plotter.NewLabels(labels)
	if err != nil {
		return nil, err
	}
	for i := range lbl.TextStyle {
		lbl.TextStyle[i].XAlign = -0.5
		lbl.TextStyle[i].YAlign = 0.1
	}
	p.Add(plotter.NewGrid(), bars, lbl)
	p.NominalX(names...)
	p.X.Padding = vg.Points(40)
	return p, nil
}

// latencyChart: p99 (solid) and p50 (dashed) event-to-action latency
// against offered rate, one colour per configuration, log scale.
func latencyChart(runs []*Result) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Event-to-action latency against offered rate"
	p.X.Label.Text = "offered events/s"
	p.Y.Label.Text = "latency, ms (log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	any := false
	for i, r := range runs {
		var p99, p50 plotter.XYs
		for _, ph := range r.Rates {
			if ph.LatencyMS == nil {
				continue
			}
			p99 = append(p99, plotter.XY{X: ph.OfferedPerSec, Y: max(ph.LatencyMS.P99, 0.001)})
			p50 = append(p50, plotter.XY{X: ph.OfferedPerSec, Y: max(ph.LatencyMS.P50, 0.001)})
		}
		if len(p99) == 0 {
			continue
		}
		any = true
		l99, pts, err := plotter.NewLinePoints(p99)
		if err != nil {
			return nil, err
		}
		l99.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
		pts.Shape = plotutil.Shape(i)
		l50, err := plotter.NewLine(p50)
		if err != nil {
			return nil, err
		}
		l50.Color = plotutil.Color(i)
		l50.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l99, pts, l50)
		p.Legend.Add(label(r)+" p99", l99, pts)
		p.Legend.Add(label(r)+" p50", l50)
	}
	if !any {
		return nil, nil
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	return p, nil
}

// WriteJSON writes the matrix as JSON.
func (m *MatrixResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(m)
}

// WriteTable writes one line per phase of each run, and the files written.
func (m *MatrixResult) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "config\tphase\toffered/s\tevents/s\tceiling/s\tratio\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tCPU µs/ev\t\n")
	for _, r := range m.Runs {
		if d := r.Drain; d != nil {
			c := 0.0
			if r.Ceiling != nil {
				c = r.Ceiling.PerSec
			}
			fmt.Fprintf(tw, "%s\tdrain\t-\t%s\t%s\t%.2f\t-\t-\t-\t-\t%.1f\t\n", label(r), num(d.EventsPerSec), num(c), ratio(d.EventsPerSec, c), d.CPUMicrosPerEvent)
		}
		for _, ph := range r.Rates {
			p50, p99, p999, pmax := "n/a", "n/a", "n/a", "n/a"
			if l := ph.LatencyMS; l != nil && l.Count > 0 {
				p50, p99, p999, pmax = ms2(l.P50), ms2(l.P99), ms2(l.P999), ms2(l.Max)
			}
			fmt.Fprintf(tw, "%s\trate\t%s\t%s\t-\t-\t%s\t%s\t%s\t%s\t%.1f\t\n", label(r), num(ph.OfferedPerSec), num(ph.EventsPerSec), p50, p99, p999, pmax, ph.CPUMicrosPerEvent)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nwrote %s and %v\n", m.CSV, m.Chart)
	return err
}
