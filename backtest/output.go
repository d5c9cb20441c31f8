package backtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The JSON form of a Report: the first rules file's figures at the top
// level, a compared file's under "compare". Ratios are unrounded, times in
// seconds, undefined figures null.
type jsonReport struct {
	jsonModel
	HorizonSeconds float64    `json:"horizon_seconds"`
	Conversion     string     `json:"conversion,omitempty"`
	Conversions    string     `json:"conversions_file,omitempty"`
	ConversionRows *int       `json:"conversion_rows,omitempty"`
	Compare        *jsonModel `json:"compare,omitempty"`
}

type jsonModel struct {
	Rules      string   `json:"rules"`
	Population int      `json:"population"`
	Converters int      `json:"converters"`
	BaseRate   *float64 `json:"base_rate"`
	// ConversionsIgnored counts the CSV rows whose contact is not in the
	// population.
	ConversionsIgnored int           `json:"conversions_ignored"`
	Triggers           []jsonTrigger `json:"triggers"`
	Sweep              []jsonSweep   `json:"sweep"`
	SweepMethod        string        `json:"sweep_method,omitempty"`
}

type jsonTrigger struct {
	Trigger string `json:"trigger"`
	jsonFigures
}

type jsonSweep struct {
	Trigger   string  `json:"trigger"`
	Threshold float64 `json:"threshold"`
	jsonFigures
}

// jsonFigures are a trigger's figures, the same for the plain run and for
// each threshold of a sweep.
type jsonFigures struct {
	Alerted               int      `json:"alerted"`
	Precision             *float64 `json:"precision"`
	Recall                *float64 `json:"recall"`
	Lift                  *float64 `json:"lift"`
	LeadTimeMedianSeconds *float64 `json:"lead_time_median_seconds"`
	Predicted             int      `json:"predicted"`
	Caught                int      `json:"caught"`
}

func figuresOf(f Figures) jsonFigures {
	return jsonFigures{f.Alerted, f.Precision, f.Recall, f.Lift, f.LeadTime, f.Predicted, f.Caught}
}

func toJSONModel(m *Model) jsonModel {
	j := jsonModel{Rules: m.Rules, Population: m.Population, Converters: m.Converters, BaseRate: m.BaseRate,
		ConversionsIgnored: m.Ignored, Triggers: []jsonTrigger{}, Sweep: []jsonSweep{}, SweepMethod: m.SweepMethod}
	for _, f := range m.Triggers {
		j.Triggers = append(j.Triggers, jsonTrigger{f.Trigger, figuresOf(f)})
	}
	for _, f := range m.Sweep {
		j.Sweep = append(j.Sweep, jsonSweep{f.Trigger, *f.Threshold, figuresOf(f)})
	}
	return j
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	j := jsonReport{jsonModel: toJSONModel(r.Models[0]), HorizonSeconds: r.Horizon.Seconds(),
		Conversion: r.Conversion, Conversions: r.ConversionsFile}
	if r.ConversionsFile != "" {
		j.ConversionRows = &r.ConversionRows
	}
	if len(r.Models) > 1 {
		c := toJSONModel(r.Models[1])
		j.Compare = &c
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(j)
}

// WriteTable writes the report for people: figures rounded, "-" for an
// undefined figure, two rules files side by side.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	src := "events matching " + r.Conversion
	if r.ConversionsFile != "" {
		src = fmt.Sprintf("%s (%d rows)", r.ConversionsFile, r.ConversionRows)
	}
	fmt.Fprintf(&b, "Backtest: horizon %s; conversions: %s\n", Duration(r.Horizon.Seconds()), src)
	for i, m := range r.Models {
		name := m.Rules
		if len(r.Models) > 1 {
			name = fmt.Sprintf("[%c] %s", 'A'+i, m.Rules)
		}
		fmt.Fprintf(&b, "%s: %s contacts, %s converters, base rate %s", name, count(m.Population), count(m.Converters), pct(m.BaseRate))
		if r.ConversionsFile != "" {
			fmt.Fprintf(&b, "; %d conversion rows ignored (contact not in the traffic)", m.Ignored)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := "alerted\tprecision\trecall\tlift\tmedian lead\t"
	// The first column is left-aligned by padding (the rest align right).
	width := len("threshold")
	for _, id := range triggerIDs(r.Models) {
		width = max(width, len(id))
	}
	left := func(s string) string { return s + strings.Repeat(" ", width-len(s)) }
	head := func(first string) {
		fmt.Fprintf(tw, "%s\t", left(first))
		for i := range r.Models {
			if i > 0 {
				fmt.Fprint(tw, "|\t")
			}
			fmt.Fprint(tw, cols)
		}
		fmt.Fprintln(tw)
	}
	if len(r.Models) > 1 {
		fmt.Fprintf(tw, "%s\t", left(""))
		for i := range r.Models {
			if i > 0 {
				fmt.Fprint(tw, "|\t")
			}
			fmt.Fprintf(tw, "[%c]\t\t\t\t\t", 'A'+i)
		}
		fmt.Fprintln(tw)
	}
	head("trigger")
	for _, id := range triggerIDs(r.Models) {
		fmt.Fprintf(tw, "%s\t", left(id))
		for i, m := range r.Models {
			if i > 0 {
				fmt.Fprint(tw, "|\t")
			}
			f, ok := find(m.Triggers, id)
			if !ok {
				fmt.Fprint(tw, "(none)\t\t\t\t\t")
				continue
			}
			row(tw, f)
		}
		fmt.Fprintln(tw)
	}
	if r.Sweep != nil {
		fmt.Fprintln(tw)
		var own []string
		for i, m := range r.Models {
			if m.SweepAt != nil {
				tag := ""
				if len(r.Models) > 1 {
					tag = fmt.Sprintf("[%c] ", 'A'+i)
				}
				own = append(own, fmt.Sprintf("%sfires when score %s %s", tag, m.SweepOp, formatNumber(*m.SweepAt)))
			}
		}
		fmt.Fprintf(tw, "Sweep of %s (%s; * marks the file's own threshold):\n", r.Sweep.Trigger, strings.Join(own, ", "))
		head("threshold")
		for k, n := range r.Sweep.Thresholds {
			mark := ""
			for i, m := range r.Models {
				if m.SweepAt != nil && *m.SweepAt == n {
					mark += " *"
					if len(r.Models) > 1 {
						mark += string(rune('A' + i))
					}
				}
			}
			fmt.Fprintf(tw, "%s\t", left(formatNumber(n)+mark))
			for i, m := range r.Models {
				if i > 0 {
					fmt.Fprint(tw, "|\t")
				}
				if m.Sweep == nil {
					fmt.Fprint(tw, "(none)\t\t\t\t\t")
					continue
				}
				row(tw, m.Sweep[k])
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nprecision: share of alerted contacts that converted within the horizon after the first firing; recall: share of converters with a firing within the horizon before converting; lift: precision / base rate.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func row(w io.Writer, f Figures) {
	lead := "-"
	if f.LeadTime != nil {
		lead = Duration(*f.LeadTime)
	}
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t", f.Alerted, pct(f.Precision), pct(f.Recall), times(f.Lift), lead)
}

func triggerIDs(ms []*Model) []string {
	var ids []string
	seen := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Triggers {
			if !seen[f.Trigger] {
				seen[f.Trigger] = true
				ids = append(ids, f.Trigger)
			}
		}
	}
	return ids
}

func find(fs []Figures, id string) (Figures, bool) {
	for _, f := range fs {
		if f.Trigger == id {
			return f, true
		}
	}
	return Figures{}, false
}

func pct(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64) + "%"
}

func times(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 2, 64) + "x"
}

func count(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Duration writes seconds for people, rounded to two units: "6d 4h",
// "5h 12m", "45m", "30s".
func Duration(sec float64) string {
	d := time.Duration(math.Round(sec)) * time.Second
	day := 24 * time.Hour
	switch {
	case d >= day:
		d = d.Round(time.Hour)
		if h := (d % day) / time.Hour; h != 0 {
			return fmt.Sprintf("%dd %dh", d/day, h)
		}
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour:
		d = d.Round(time.Minute)
		if m := (d % time.Hour) / time.Minute; m != 0 {
			return fmt.Sprintf("%dh %dm", d/time.Hour, m)
		}
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		return fmt.Sprintf("%dm", d.Round(time.Minute)/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
