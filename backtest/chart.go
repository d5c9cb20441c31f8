package backtest

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot" // the precision/recall chart (PNG or SVG), drawn by a plotting library as bench's charts are
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ChartFormat checks that a --chart path ends in .png or .svg.
func ChartFormat(path string) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png", ".svg":
		return nil
	}
	return fmt.Errorf("--chart %q: the file must end in .png or .svg", path)
}

// WriteChart draws precision and recall against the sweep's threshold, a
// colour per rules file (precision solid with points, recall dashed), a
// dotted vertical line at each file's own threshold, and the base rate as a
// thin grey line, so that the chart reads without the table.
func (r *Report) WriteChart(path string) error {
	if err := ChartFormat(path); err != nil {
		return err
	}
	if r.Sweep == nil {
		return errors.New("--chart needs --sweep: it draws the figures of each threshold")
	}
	m0 := r.Models[0]
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Backtest of trigger %s: precision and recall by score threshold\n"+
		"converted within %s of the alert; %s converters among %s contacts (base rate %s)",
		r.Sweep.Trigger, Duration(r.Horizon.Seconds()), count(m0.Converters), count(m0.Population), pct(m0.BaseRate))
	p.X.Label.Text = fmt.Sprintf("threshold N (%s fires when its score reaches N)", r.Sweep.Trigger)
	p.Y.Label.Text = "precision, recall (share, 0 to 1)"
	// Zoom on the data, with room above it for the legend.
	top := 0.0
	for _, m := range r.Models {
		for _, f := range m.Sweep {
			for _, v := range []*float64{f.Precision, f.Recall, m.BaseRate} {
				if v != nil {
					top = max(top, *v)
				}
			}
		}
	}
	p.Y.Min, p.Y.Max = 0, min(1.0, max(0.1, math.Ceil(top*1.6*20)/20))
	p.X.Min, p.X.Max = r.Sweep.From, r.Sweep.To
	if p.X.Min == p.X.Max {
		p.X.Min, p.X.Max = p.X.Min-1, p.X.Max+1
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = false
	for i, m := range r.Models {
		if m.Sweep == nil {
			continue
		}
		name := filepath.Base(m.Rules)
		var prec, rec plotter.XYs
		for _, f := range m.Sweep {
			if f.Precision != nil {
				prec = append(prec, plotter.XY{X: *f.Threshold, Y: *f.Precision})
			}
			if f.Recall != nil {
				rec = append(rec, plotter.XY{X: *f.Threshold, Y: *f.Recall})
			}
		}
		col := plotutil.Color(i)
		if len(prec) > 0 {
			l, pts, err := plotter.NewLinePoints(prec)
			if err != nil {
				return err
			}
			l.Color, l.Width = col, vg.Points(2)
			pts.Color, pts.Shape = col, draw.CircleGlyph{}
			p.Add(l, pts)
			p.Legend.Add("precision, "+name, l, pts)
		}
		if len(rec) > 0 {
			l, pts, err := plotter.NewLinePoints(rec)
			if err != nil {
				return err
			}
			l.Color, l.Width = col, vg.Points(2)
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
			pts.Color, pts.Shape = col, draw.TriangleGlyph{}
			p.Add(l, pts)
			p.Legend.Add("recall, "+name, l, pts)
		}
		same := i > 0 && m0.SweepAt != nil && m.SweepAt != nil && *m0.SweepAt == *m.SweepAt && m0.SweepOp == m.SweepOp
		if m.SweepAt != nil && *m.SweepAt >= p.X.Min && *m.SweepAt <= p.X.Max && !same {
			v, err := plotter.NewLine(plotter.XYs{{X: *m.SweepAt, Y: 0}, {X: *m.SweepAt, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			v.Color = col
			v.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
			p.Add(v)
			in := name
			if i == 0 && len(r.Models) > 1 && sameThreshold(r.Models) {
				in = "both files"
			}
			p.Legend.Add(fmt.Sprintf("today's threshold in %s: score %s %s", in, m.SweepOp, formatNumber(*m.SweepAt)), v)
		}
		if i == 0 && m.BaseRate != nil {
			b, err := plotter.NewLine(plotter.XYs{{X: p.X.Min, Y: *m.BaseRate}, {X: p.X.Max, Y: *m.BaseRate}})
			if err != nil {
				return err
			}
			b.Color = color.Gray{Y: 110}
			b.Width = vg.Points(0.75)
			p.Add(b)
			p.Legend.Add(fmt.Sprintf("base rate (%s): precision of alerting everyone", pct(m.BaseRate)), b)
		}
	}
	return p.Save(24*vg.Centimeter, 15*vg.Centimeter, path)
}

// sameThreshold reports whether every file sweeps from the same comparison.
func sameThreshold(ms []*Model) bool {
	for _, m := range ms[1:] {
		if m.SweepAt == nil || ms[0].SweepAt == nil || *m.SweepAt != *ms[0].SweepAt || m.SweepOp != ms[0].SweepOp {
			return false
		}
	}
	return true
}
