#!/bin/bash
# The shipped alerts (controller/deploy/monitoring/prometheusrule.yaml) with Debian's
# promtool: the rule groups of the PrometheusRule check, and rules-test.yml's series fire
# each alert and leave it quiet where they must. The Grafana dashboard is valid JSON whose
# queries promtool parses. Skipped without promtool (package prometheus).
. "$BOP_SOURCE_ROOT/tests/tap.sh"
command -v promtool >/dev/null || skip_all "promtool is not installed (Debian package prometheus)"
python3 -c 'import yaml' 2>/dev/null || skip_all "python3-yaml is not installed"
M=$BOP_SOURCE_ROOT/controller/deploy/monitoring
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-rules.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
TAP_LOG=$T/tap.log

# The groups as a plain Prometheus rule file, as the operator would hand them over.
ok "the PrometheusRule's groups extract" python3 -c "
import yaml
d = yaml.safe_load(open('$M/prometheusrule.yaml'))
assert d['kind'] == 'PrometheusRule' and d['apiVersion'] == 'monitoring.coreos.com/v1', d['kind']
yaml.safe_dump({'groups': d['spec']['groups']}, open('$T/backupop-rules.yml', 'w'), sort_keys=False)"
ok "promtool check rules accepts them" promtool check rules "$T/backupop-rules.yml"
ok "every alert has a severity, a summary and a description" python3 -c "
import yaml
for g in yaml.safe_load(open('$T/backupop-rules.yml'))['groups']:
    for r in g['rules']:
        assert r['labels']['severity'] in ('critical', 'warning'), r['alert']
        assert r['annotations']['summary'] and r['annotations']['description'], r['alert']"
cp "$BOP_SOURCE_ROOT/tests/monitoring/rules-test.yml" "$T/"
ok "promtool test rules: each alert fires on its series and stays quiet on the others" \
	promtool test rules "$T/rules-test.yml"
ok "every alert is exercised by rules-test.yml, firing and quiet" python3 -c "
import yaml
alerts = {r['alert'] for g in yaml.safe_load(open('$T/backupop-rules.yml'))['groups'] for r in g['rules']}
fire, quiet = set(), set()
for t in yaml.safe_load(open('$T/rules-test.yml'))['tests']:
    for a in t.get('alert_rule_test', []):
        (fire if a.get('exp_alerts') else quiet).add(a['alertname'])
assert alerts <= fire, alerts - fire
assert alerts <= quiet, alerts - quiet"
# A broken rule is caught: without its "unless suspended", a suspended schedule alerts.
sed 's/unless on (namespace, schedule) backupop_schedule_suspended == 1//' \
	"$T/backupop-rules.yml" >"$T/broken.yml"
sed 's/backupop-rules.yml/broken.yml/' "$T/rules-test.yml" >"$T/broken-test.yml"
fails "... and a rule that alerts on suspended schedules fails the test" \
	promtool test rules "$T/broken-test.yml"

# The dashboard: JSON, and every query is PromQL that Prometheus parses (Grafana's
# $variables and $__ intervals replaced by values), written into a rule file for promtool.
ok "the Grafana dashboard's queries parse as PromQL" python3 -c "
import json, re, yaml
d = json.load(open('$M/grafana-dashboard.json'))
assert d['uid'] and d['title'] and d['panels'], 'no panels'
exprs = [t['expr'] for p in d['panels'] for t in p.get('targets', [])]
exprs += [v['definition'].replace('label_values(', '').rsplit(',', 1)[0]
          for v in d['templating']['list'] if v['type'] == 'query']
assert len(exprs) > 10, exprs
rules = [{'record': 'dashboard:q%d' % i,
          'expr': re.sub(r'\\\$__\w+', '5m', re.sub(r'\\\$(namespace|schedule)', '.*', e))}
         for i, e in enumerate(exprs)]
yaml.safe_dump({'groups': [{'name': 'dashboard', 'rules': rules}]}, open('$T/dash.yml', 'w'))"
ok "... promtool check rules on them" promtool check rules "$T/dash.yml"
for f in servicemonitor podmonitor; do
	ok "$f.yaml is a monitoring.coreos.com/v1 object on the port named metrics" python3 -c "
import yaml
d = yaml.safe_load(open('$M/$f.yaml'))
assert d['apiVersion'] == 'monitoring.coreos.com/v1', d
eps = d['spec'].get('endpoints') or d['spec'].get('podMetricsEndpoints')
assert eps and all(e['port'] == 'metrics' for e in eps), eps"
done
ok "podmonitor-sidecar.yaml selects the sidecars' port bop-metrics in any namespace, as job backupop-runner" python3 -c "
import yaml
d = yaml.safe_load(open('$M/podmonitor-sidecar.yaml'))
s = d['spec']
assert d['apiVersion'] == 'monitoring.coreos.com/v1' and d['kind'] == 'PodMonitor', d
assert s['namespaceSelector'] == {'any': True}, s
assert s['selector'] == {'matchExpressions': [{'key': 'backupop.io/sidecar-of', 'operator': 'Exists'}]}, s
eps = s['podMetricsEndpoints']
assert [e['port'] for e in eps] == ['bop-metrics'], eps
r = {x['targetLabel']: x for x in eps[0]['relabelings']}
assert r['job']['replacement'] == 'backupop-runner', r
assert r['schedule']['sourceLabels'] == ['__meta_kubernetes_pod_label_backupop_io_sidecar_of'], r"
done_testing
