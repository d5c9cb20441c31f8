package main

import (
	"testing"

	"github.com/leadpulse/leadpulse/admin"
	"github.com/leadpulse/leadpulse/config"
	"github.com/leadpulse/leadpulse/stream"
)

// TestWebUIHistorySetting: ui.history decides which observers the scoring
// stage calls; with "actions" or "off" the per-event one is not set at all,
// so the partitions pay nothing for it.
func TestWebUIHistorySetting(t *testing.T) {
	for _, tc := range []struct {
		history             string
		onApplied, onAction bool
		records             string
	}{
		{config.UIHistoryEvents, true, true, admin.RecordsEvents},
		{config.UIHistoryActions, false, true, admin.RecordsActions},
		{config.UIHistoryOff, false, false, admin.RecordsNothing},
	} {
		t.Run(tc.history, func(t *testing.T) {
			var sc stream.Scoring
			u := newWebUI(&sc, tc.history)
			if (sc.OnApplied != nil) != tc.onApplied || (sc.OnAction != nil) != tc.onAction {
				t.Errorf("OnApplied set %v, OnAction set %v; want %v, %v", sc.OnApplied != nil, sc.OnAction != nil, tc.onApplied, tc.onAction)
			}
			if got := u.hist.Records(); got != tc.records {
				t.Errorf("History records %q, want %q", got, tc.records)
			}
		})
	}
}
