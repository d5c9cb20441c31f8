package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestRunKustomizeRulesHint: the Kubernetes config names rules.yaml, which
// kustomize generates; checked from a clone, the message says so and how to
// point the config at a rules file, and that hint works as written.
func TestRunKustomizeRulesHint(t *testing.T) {
	t.Setenv("LEADPULSE_ADMIN_TOKEN", "x") // its http listens beyond loopback
	code, _, errs := runCLI(t, "", "run", "--config", "../../deploy/kubernetes/config.yaml", "--check")
	for _, want := range []string{
		"leadpulse run: rules file ",
		"deploy/kubernetes/rules.yaml does not exist (rules: at ",
		"config.yaml:71, relative to the config file)",
		"kustomization generates rules.yaml",
		"LEADPULSE_RULES=examples/b2b-saas.yaml leadpulse run --config ",
	} {
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("exit %d, want 2 with %q; stderr:\n%s", code, want, errs)
		}
	}
	if strings.Contains(errs, "leadpulse: ") {
		t.Errorf("the message names the command, not just leadpulse:\n%s", errs)
	}

	t.Setenv("LEADPULSE_RULES", "../../examples/b2b-saas.yaml")
	if code, _, errs := runCLI(t, "", "run", "--config", "../../deploy/kubernetes/config.yaml", "--check"); code != 0 {
		t.Errorf("with LEADPULSE_RULES: exit %d, want 0; stderr:\n%s", code, errs)
	}
}

// TestSinksErrorsOnce: a sinks problem in the deployment config or in
// LEADPULSE_SINKS is FILE:LINE: sinks.NAME: message, under one
// "leadpulse run:" and without a doubled "sinks: sinks:".
func TestSinksErrorsOnce(t *testing.T) {
	rulesFile := writeFile(t, "rules.yaml", "version: 1\n")
	for _, tc := range []struct {
		name, config, env string
		want              *regexp.Regexp
	}{
		{"setting in the file", "sinks:\n  log: {type: stdout}\n  hook:\n    type: webhook\n", "",
			regexp.MustCompile(`^leadpulse run: \S+/config\.yaml:4: sinks\.hook: type webhook needs url`)},
		{"unknown key in the file", "sinks:\n  log:\n    type: stdout\n    fromat: text\n", "",
			regexp.MustCompile(`^leadpulse run: \S+/config\.yaml:5: field fromat not found`)},
		{"setting in LEADPULSE_SINKS", "", "log: {type: stdout}\nhook: {type: pigeon}\n",
			regexp.MustCompile(`^leadpulse run: \$LEADPULSE_SINKS:2: sinks\.hook: unknown type "pigeon"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LEADPULSE_SINKS", tc.env) // restored after the test
			if tc.env == "" {
				os.Unsetenv("LEADPULSE_SINKS")
			}
			cfg := writeFile(t, "config.yaml", "rules: "+rulesFile+"\n"+tc.config)
			code, _, errs := runCLI(t, "", "run", "--config", cfg, "--check")
			if code != 2 || !tc.want.MatchString(errs) {
				t.Errorf("exit %d, want 2 matching %s; stderr:\n%s", code, tc.want, errs)
			}
			if strings.Contains(errs, "sinks: sinks:") || strings.Count(errs, "leadpulse") != 1 {
				t.Errorf("doubled prefix:\n%s", errs)
			}
		})
	}
}

// TestDevRedisDownLogs: with Redis down, go-redis' own lines come through
// slog (level=WARN msg="redis client"), never as its unstructured
// "redis: 2006/01/02 …" lines beside them.
func TestDevRedisDownLogs(t *testing.T) {
	down := freeAddr(t) // closed: nothing listens there
	code, _, errs := runCLI(t, "", "dev", "--kafka", freeAddr(t), "--http", freeAddr(t), "--redis", down, "--no-demo")
	if code != 2 || !strings.Contains(errs, "leadpulse dev: --redis "+down) {
		t.Errorf("exit %d, want 2 naming --redis; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, `level=WARN msg="redis client" detail="connection pool: failed to dial`) {
		t.Errorf("go-redis' dial failure not logged through slog; stderr:\n%s", errs)
	}
	if regexp.MustCompile(`(?m)^redis: \d{4}/`).MatchString(errs) {
		t.Errorf("go-redis' own unstructured lines; stderr:\n%s", errs)
	}
}

func TestCommandName(t *testing.T) {
	for in, want := range map[string]string{
		"run":                "leadpulse run",
		"contact <id>":       "leadpulse contact",
		"rules test <files>": "leadpulse rules test",
		"":                   "leadpulse",
	} {
		if got := commandName(in); got != want {
			t.Errorf("commandName(%q) = %q, want %q", in, got, want)
		}
	}
}
