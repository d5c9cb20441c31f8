package backtest

import (
	"errors"
	"fmt"
	"image/color"
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
	p.Y.Label.Text = "share (0 to 1)"
	p.Y.Min, p.Y.Max = 0, 1.05
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
		if m.SweepAt != nil && *m.SweepAt >= p.X.Min && *m.SweepAt <= p.X.Max {
			v, err := plotter.NewLine(plotter.XYs{{X: *m.SweepAt, Y: 0}, {X: *m.SweepAt, Y: 1.05}})
			if err != nil {
				return err
			}
			v.Color = col
			v.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
			p.Add(v)
			p.Legend.Add(fmt.Sprintf("today's threshold in %s: %s %s", name, m.SweepOp, formatNumber(*m.SweepAt)), v)
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
