#!/usr/bin/env bash
# Checks the deployment files with the tools at hand, skipping (and saying so)
# those that are missing:
#
#   deploy/check.sh           check
#   deploy/check.sh --write   regenerate deploy/kubernetes/monitoring/prometheusrule.yaml
#                             from deploy/prometheus/alerts.yaml, then check
#
# Tools: promtool (Debian: apt-get install prometheus), kubectl (kustomize),
# python3 (JSON; with PyYAML, the YAML files), go (the config and rules with
# the real loader: `leadpulse run --check`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rules="$here/prometheus/alerts.yaml"
prule="$here/kubernetes/monitoring/prometheusrule.yaml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { printf 'ok    %s\n' "$*"; }
skip() { printf 'skip  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failed=1; }

# The PrometheusRule is alerts.yaml under spec:, without its header comment.
prometheusrule() {
	cat <<'EOF'
# Generated from deploy/prometheus/alerts.yaml by `deploy/check.sh --write`:
# edit that file, not this one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: leadpulse
  labels:
    app.kubernetes.io/name: leadpulse
spec:
EOF
	sed -n '/^groups:/,$p' "$rules" | sed 's/^\(.\)/  \1/'
}

if [[ "${1:-}" == "--write" ]]; then
	prometheusrule >"$prule"
	echo "wrote $prule"
fi

if prometheusrule | cmp -s - "$prule"; then
	ok "prometheusrule.yaml matches alerts.yaml"
else
	fail "prometheusrule.yaml is out of date: run deploy/check.sh --write"
fi

# Grafana dashboard: JSON.
if command -v python3 >/dev/null; then
	if python3 -m json.tool "$here/grafana/leadpulse.json" >/dev/null; then
		ok "grafana/leadpulse.json is JSON"
	else
		fail "grafana/leadpulse.json"
	fi
	if python3 -c 'import yaml' 2>/dev/null; then
		for f in $(cd "$here" && find . -name '*.yaml' | sort); do
			if python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$here/$f"; then
				ok "$f parses"
			else
				fail "$f does not parse"
			fi
		done
	else
		skip "YAML parsing (python3 has no PyYAML: apt-get install python3-yaml)"
	fi
else
	skip "JSON and YAML parsing (no python3)"
fi

# Alert rules: syntax, then the unit tests against a copy without annotations
# (they pin when alerts fire and with which labels, not their wording).
if command -v promtool >/dev/null; then
	if promtool check rules "$rules" >"$tmp/out" 2>&1; then ok "promtool check rules"; else cat "$tmp/out"; fail "promtool check rules"; fi
	awk '
		skip { match($0, /^ */); if ($0 ~ /^ *$/ || RLENGTH > ind) next; skip = 0 }
		/^ *annotations: *$/ { match($0, /^ */); ind = RLENGTH; skip = 1; next }
		{ print }' "$rules" >"$tmp/alerts.noannotations.yaml"
	cp "$here/prometheus/alerts_test.yaml" "$tmp/"
	if (cd "$tmp" && promtool test rules alerts_test.yaml) >"$tmp/out" 2>&1; then ok "promtool test rules"; else cat "$tmp/out"; fail "promtool test rules"; fi
	# The dashboard's queries, as recording rules, for PromQL syntax.
	if command -v python3 >/dev/null; then
		python3 - "$here/grafana/leadpulse.json" >"$tmp/dashboard_rules.yaml" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("groups:\n  - name: dashboard\n    rules:")
i = 0
for p in d["panels"]:
    for t in p.get("targets", []):
        e = t["expr"].replace("$job", "leadpulse").replace("$instance", ".*").replace("$__rate_interval", "1m")
        print("      - record: dashboard:q%d\n        expr: %s" % (i, json.dumps(e)))
        i += 1
EOF
		if promtool check rules "$tmp/dashboard_rules.yaml" >"$tmp/out" 2>&1; then ok "dashboard queries are valid PromQL"; else cat "$tmp/out"; fail "dashboard queries"; fi
	fi
else
	skip "alert rules and dashboard queries (no promtool: apt-get install prometheus)"
fi

# Kubernetes manifests: kustomize renders them (names, generators, hashes).
if command -v kubectl >/dev/null; then
	if kubectl kustomize --load-restrictor LoadRestrictionsNone "$here/kubernetes" >"$tmp/rendered.yaml" 2>"$tmp/out"; then
		ok "kustomize build deploy/kubernetes ($(grep -c '^kind:' "$tmp/rendered.yaml") objects)"
	else
		cat "$tmp/out"
		fail "kustomize build deploy/kubernetes"
	fi
	if command -v kubeconform >/dev/null; then
		if kubeconform -strict -summary -ignore-missing-schemas "$tmp/rendered.yaml"; then ok "kubeconform"; else fail "kubeconform"; fi
	else
		skip "schema validation (no kubeconform)"
	fi
else
	skip "kustomize build (no kubectl)"
fi

# The deployment config, the example sinks and the rules, with the real
# loader and no connection to anything.
if command -v go >/dev/null; then
	mkdir -p "$tmp/etc"
	cp "$here/kubernetes/config.yaml" "$tmp/etc/config.yaml"
	cp "$root/examples/b2b-saas.yaml" "$tmp/etc/rules.yaml"
	if (cd "$root" && go build -o "$tmp/leadpulse" ./cmd/leadpulse) 2>"$tmp/out" &&
		env LEADPULSE_ADMIN_TOKEN=check LEADPULSE_SINKS="$(cat "$here/kubernetes/sinks.example.yaml")" \
			"$tmp/leadpulse" run --check --config "$tmp/etc/config.yaml" >/dev/null 2>"$tmp/out"; then
		ok "leadpulse run --check: config.yaml + sinks.example.yaml + examples/b2b-saas.yaml"
		grep -i warning "$tmp/out" || true
	else
		cat "$tmp/out"
		fail "leadpulse run --check"
	fi
else
	skip "leadpulse run --check (no go)"
fi

if ((failed)); then
	echo "deploy/check.sh: FAILED"
	exit 1
fi
echo "deploy/check.sh: all checks that could run passed"
