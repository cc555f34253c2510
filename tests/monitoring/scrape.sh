#!/bin/bash
# A real Prometheus (Debian's) scrapes a backupop-controller, against the real
# kube-apiserver with the shipped RBAC, and a backupop-runner daemon started with the config
# the controller wrote (the test plays the kubelet, as tests/controller/e2e.sh does). The
# runner's metrics listener answers without a token while its API keeps it; the controller's
# per-schedule gauges follow a good and a failed BackupRun and go with a deleted schedule;
# every series the shipped alerts and dashboard use is in what Prometheus scraped, and the
# failed run makes BackupopBackupFailed pending. Nothing secret in any metric.
command -v prometheus >/dev/null || { echo "1..0 # SKIP prometheus is not installed (Debian package prometheus)"; exit 0; }
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"
[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
python3 -c 'import yaml' 2>/dev/null || skip_all "python3-yaml is not installed"
M=$BOP_SOURCE_ROOT/controller/deploy/monitoring
TAP_LOG=$T/tap.log

"$BOP" keygen -o "$T/key" >/dev/null 2>&1 || { echo "Bail out! backupop keygen failed"; exit 1; }
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$T/key" | head -1)
echo "rows of the application" >"$T/input"
RPORT=$(free_port)
k -n "$NS" create secret generic keys --from-literal=recipients="$RECIPIENT" >/dev/null
file_storage mon '{from: All}'
schedule() { # NAME
	k -n "$NS" apply -f - >/dev/null <<EOF2
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: $1}
spec:
  schedule: "0 3 * * *"
  suspend: true
  engine:
    exec: {backupCommand: [cat, '$T/input'], restoreCommand: [cat]}
  storage: {name: files-$NS}
  encryption: {recipientsSecretRef: {name: keys, key: recipients}}
EOF2
}
schedule app
schedule other
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
CPORT=$MPORT_a
N=$(rname "$NS" app)
ok "the controller writes the runner Secret" wait_for 30 k -n "$SYS" get secret "$N"
ok "... and its StatefulSet" wait_for 30 k -n "$SYS" get statefulset "$N"
k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/config.json"
k -n "$SYS" get statefulset "$N" -o json >"$T/sts.json"
MP=$((RPORT + 1))
ok "the runner config turns on the metrics listener at the API port plus one" jq_py "
assert d['metrics'] == {'listen': ':$MP'}, d.get('metrics')" <"$T/config.json"
ok "the runner pod exposes it as the container port named metrics, with scrape annotations" jq_py "
t = d['spec']['template']
p = {p['name']: p['containerPort'] for p in t['spec']['containers'][0]['ports']}
assert p == {'api': $RPORT, 'metrics': $MP}, p
a = t['metadata']['annotations']
assert a['prometheus.io/scrape'] == 'true' and a['prometheus.io/port'] == '$MP', a
l = t['metadata']['labels']
assert l['app.kubernetes.io/name'] == 'backupop-runner' and l['backupop.io/schedule-name'] == 'app', l" <"$T/sts.json"

# Play the kubelet: the runner with that config, its storage a local directory (the PVC),
# its metrics listener on a free local port.
RMPORT=$(free_port)
TOKEN=$(jq_py "print(d['api']['token'])" <"$T/config.json")
jq_py "
d['storage']['url'] = 'file://$T/store'
d['metrics']['listen'] = '127.0.0.1:$RMPORT'
print(json.dumps(d))" <"$T/config.json" >"$T/runner.json"
chmod 600 "$T/config.json" "$T/runner.json"
"$RUNNER" --config "$T/runner.json" --state-dir "$T/runner.state" --log-format text \
	>"$T/runner.log" 2>&1 &
PIDS+=("$!")
ok "the runner's metrics listener answers without a token" \
	wait_for 20 curl -sf "http://127.0.0.1:$RMPORT/metrics"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
ok "... and so do its /healthz and /readyz" sh -c "curl -sf http://127.0.0.1:$RMPORT/healthz && curl -sf http://127.0.0.1:$RMPORT/readyz"
ok "the listener serves nothing of the API (GET /v1/runs: 404)" test "$(code "http://127.0.0.1:$RMPORT/v1/runs")" = 404
ok "... nor POST /v1/backups (404, no run queued)" test "$(code -X POST -d '{}' "http://127.0.0.1:$RMPORT/v1/backups")" = 404
ok "the API's own /metrics still wants the token (401)" test "$(code "http://127.0.0.1:$RPORT/metrics")" = 401
ok "... and serves it with the token" test "$(code -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$RPORT/metrics")" = 200

run() { # NAME
	k -n "$NS" apply -f - >/dev/null <<EOF2
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: $1}
spec: {scheduleRef: {name: app}, action: backup}
EOF2
}
phase_is() { [ "$(k -n "$NS" get backuprun "$1" -o jsonpath='{.status.phase}')" = "$2" ]; }
run good
ok "a backup BackupRun succeeds" wait_for 60 phase_is good Succeeded
k -n "$NS" get backuprun good -o json >"$T/good.json"
sleep 1
rm "$T/input"
run bad
ok "a backup BackupRun whose command fails is Failed" wait_for 60 phase_is bad Failed
k -n "$NS" get backuprun bad -o json >"$T/bad.json"

scrape() { curl -sf "http://127.0.0.1:$1/metrics"; }
# sample PORT 'NAME{labels}': the value of that exact series, or "none"
sample() {
	scrape "$1" | python3 -c "
import sys
want = sys.argv[1]
for l in sys.stdin:
    if l.startswith(want + ' '):
        print(l.split(' ')[1].strip()); break
else:
    print('none')" "$2"
}
L="namespace=\"$NS\",schedule=\"app\""
END_OK=$(jq_py "
import calendar, time
print(calendar.timegm(time.strptime(d['status']['completionTime'], '%Y-%m-%dT%H:%M:%SZ')))" <"$T/good.json")
BYTES=$(jq_py "print(d['status']['bytesOut'])" <"$T/good.json")
same() { python3 -c "import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 0.5)" "$1" "$2"; }
ok "backupop_schedule_last_success_timestamp_seconds is the good run's end" \
	same "$(sample "$CPORT" "backupop_schedule_last_success_timestamp_seconds{$L}")" "$END_OK"
ok "backupop_schedule_last_run_success is 0 after the failed run" \
	same "$(sample "$CPORT" "backupop_schedule_last_run_success{$L}")" 0
ok "backupop_schedule_last_backup_bytes is the good run's bytesOut ($BYTES)" \
	same "$(sample "$CPORT" "backupop_schedule_last_backup_bytes{$L}")" "$BYTES"
ok "backupop_schedule_interval_seconds of a daily cron is a day" \
	same "$(sample "$CPORT" "backupop_schedule_interval_seconds{$L}")" 86400
ok "backupop_schedule_next_run_timestamp_seconds is the status's nextScheduleTime" sh -c "
	n=\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule app -o jsonpath='{.status.nextScheduleTime}')
	v=\$(date -u -d \"\$n\" +%s)
	test \"$(sample "$CPORT" "backupop_schedule_next_run_timestamp_seconds{$L}")\" != none &&
	python3 -c 'import sys; sys.exit(float(sys.argv[1]) != float(sys.argv[2]))' \"$(sample "$CPORT" "backupop_schedule_next_run_timestamp_seconds{$L}")\" \"\$v\""
ok "backupop_schedule_suspended is 1, backupop_schedule_runs counts one Failed run" sh -c "
	test '$(sample "$CPORT" "backupop_schedule_suspended{$L}")' = 1 &&
	test '$(sample "$CPORT" "backupop_schedule_runs{$L,phase=\"Failed\"}")' = 1"
ok "the runner counts the failure (backupop_runs_total)" \
	same "$(sample "$RMPORT" 'backupop_runs_total{kind="backup",result="failure"}')" 1
scrape "$CPORT" >"$T/controller.prom"
scrape "$RMPORT" >"$T/runner.prom"
ok "promtool check metrics: the controller's exposition follows Prometheus' conventions" \
	sh -c "promtool check metrics <'$T/controller.prom'"
ok "... and the runner's" sh -c "promtool check metrics <'$T/runner.prom'"
ok "no secret in the controller's or the runner's metrics (the API token)" sh -c "
	! { curl -s http://127.0.0.1:$CPORT/metrics; curl -s http://127.0.0.1:$RMPORT/metrics; } | grep -qF '$TOKEN'"

# Prometheus: the controller as the ServiceMonitor would scrape it (honor_labels), the
# runner as the PodMonitor would (job backupop-runner, namespace and schedule of the
# schedule), the shipped rules loaded and evaluated every second.
python3 -c "
import yaml
d = yaml.safe_load(open('$M/prometheusrule.yaml'))
yaml.safe_dump({'groups': d['spec']['groups']}, open('$T/rules.yml', 'w'), sort_keys=False)"
PPORT=$(free_port)
cat >"$T/prometheus.yml" <<EOF2
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ['$T/rules.yml']
scrape_configs:
- job_name: backupop-controller
  honor_labels: true
  static_configs: [{targets: ['127.0.0.1:$CPORT']}]
- job_name: backupop-runner
  static_configs:
  - targets: ['127.0.0.1:$RMPORT']
    labels: {namespace: '$NS', schedule: app, pod: $N-0}
EOF2
prometheus --config.file "$T/prometheus.yml" --storage.tsdb.path "$T/prom" \
	--web.listen-address "127.0.0.1:$PPORT" >"$T/prometheus.log" 2>&1 &
PIDS+=("$!")
ok "Prometheus starts" wait_for 60 curl -sf "http://127.0.0.1:$PPORT/-/ready"
# query PROMQL: the result vector as JSON
query() { curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query"; }
up_both() { query 'sum(up{job=~"backupop-controller|backupop-runner"})' | jq_py "
assert float(d['data']['result'][0]['value'][1]) == 2"; }
ok "it scrapes both targets (up == 1)" wait_for 30 up_both
[ -n "$(query up)" ] || sed 's/^/# /' "$T/prometheus.log" | tail -20
names() { monitoring_names "$T/rules.yml" "$M/grafana-dashboard.json"; }
# every name needs a sample of the target it belongs to: the runner's with the schedule's
# namespace and schedule labels
present() {
	local missing=()
	for n in $(names); do
		q="count($n)"
		case $n in
		backupop_schedule_*) q="count($n{namespace=\"$NS\",schedule=\"app\"})" ;;
		backupop_backup_*|backupop_runs_total|backupop_last_success_*)
			q="count($n{job=\"backupop-runner\",namespace=\"$NS\",schedule=\"app\"})" ;;
		esac
		query "$q" | jq_py "assert d['data']['result'], 'empty'" 2>/dev/null || missing+=("$n")
	done
	[ ${#missing[@]} -eq 0 ] || { echo "missing: ${missing[*]}"; return 1; }
}
diag "series the rules and the dashboard use: $(names | tr '\n' ' ')"
ok "every series the alerts and the dashboard use is in what Prometheus scraped" wait_for 20 present
present | sed 's/^/# /'
failed_alert() { curl -sf "http://127.0.0.1:$PPORT/api/v1/alerts" | jq_py "
a = [a for a in d['data']['alerts'] if a['labels']['alertname'] == 'BackupopBackupFailed']
assert [(x['labels']['namespace'], x['labels']['schedule']) for x in a] == [('$NS', 'app')], a"; }
ok "the failed run makes BackupopBackupFailed pending for this schedule" wait_for 20 failed_alert
rules_ok() { curl -sf "http://127.0.0.1:$PPORT/api/v1/rules" | jq_py "
r = [r for g in d['data']['groups'] for r in g['rules']]
assert len(r) == 6 and all(x['health'] == 'ok' for x in r), [(x['name'], x['health'], x.get('lastError')) for x in r]"; }
ok "every shipped rule evaluates without error" wait_for 10 rules_ok

# A deleted schedule's series go.
ok "the other schedule has its series" sh -c "curl -s http://127.0.0.1:$CPORT/metrics | grep -q 'schedule=\"other\"'"
k -n "$NS" delete backupschedule other --wait=false >/dev/null
gone() { ! scrape "$CPORT" | grep -q "schedule=\"other\""; }
ok "... and has none once it is deleted" wait_for 30 gone
ok "... while the remaining schedule keeps them" sh -c "curl -s http://127.0.0.1:$CPORT/metrics | grep -q 'backupop_schedule_info{namespace=\"$NS\",schedule=\"app\"'"

# With two replicas on the Lease, only the leader exports the per-schedule gauges.
stop_ctl "$PID_a"
start_ctl b --leader-elect --lease-seconds 5 --identity mon-b --runner-url "http://127.0.0.1:$RPORT" ||
	{ echo "Bail out! controller b did not become ready"; exit 1; }
leads() { [ "$(metric "$MPORT_b" backupop_controller_leader)" = 1 ]; }
ok "replica b takes the Lease" wait_for 30 leads
start_ctl c --leader-elect --lease-seconds 5 --identity mon-c --runner-url "http://127.0.0.1:$RPORT" ||
	{ echo "Bail out! controller c did not become ready"; exit 1; }
has_app() { scrape "$1" | grep -q "backupop_schedule_info{namespace=\"$NS\",schedule=\"app\""; }
ok "the leader exports the schedule's gauges" wait_for 20 has_app "$MPORT_b"
ok "the replica that stands by exports none" sh -c "
	curl -sf http://127.0.0.1:$MPORT_c/metrics | grep -q '^backupop_controller_leader 0' &&
	! curl -sf http://127.0.0.1:$MPORT_c/metrics | grep -q '^backupop_schedule_'"
# (an ASan build: a controller stopped while Prometheus scrapes it read freed informers)
ok "no sanitizer report in the controllers' or the runner's logs" \
	sh -c "! grep -h -A5 'Sanitizer\|runtime error' '$T'/a.log '$T'/b.log '$T'/c.log '$T'/runner.log"
done_testing
