#!/bin/bash
# spec.encryption.generateIdentity against the real kube-apiserver, with the shipped RBAC:
# the controller makes the age identity Secret when it is missing (no owner reference), the
# schedule's status shows its recipient, the identity reaches the runner only through the
# runner's Secret (never the log, Events or status); the test plays the kubelet, and a
# BackupRun backup (encrypted to that recipient: the real age decrypts it with the Secret's
# identity) and restore work. An existing Secret of that name without an identity is a
# condition, never overwritten; deleting the schedule leaves the identity Secret.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
RPORT=$(free_port)
mkdir -p "$T/store"
head -c 200000 /dev/urandom | od -An -tx1 >"$T/data"
file_storage id
schedule() { # NAME SECRET-NAME
	k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: $1}
spec:
  engine:
    exec: {backupCommand: [cat, "$T/data"], restoreCommand: [dd, "of=$T/restored", status=none]}
  storage: {name: files-$NS}
  compression: {algorithm: none}
  encryption: {generateIdentity: {secretName: $2}}
EOF
}
# a Secret that happens to have the name, with something else in it
k -n "$NS" create secret generic taken --from-literal=notes=keep-me-9931 >/dev/null
TAKEN_RV=$(k -n "$NS" get secret taken -o jsonpath='{.metadata.resourceVersion}')
schedule vault vault-identity
schedule clash taken
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
ready_is() { [ "$(cond backupschedule "$1")" = "$2" ]; }
ok "the schedule becomes Ready" wait_for 30 ready_is vault "True OnDemandOnly"
ok "the identity Secret was created" k -n "$NS" get secret vault-identity
k -n "$NS" get secret vault-identity -o json >"$T/idsecret.json"
python3 -c "
import json, base64, sys
d = json.load(open('$T/idsecret.json'))
open('$T/identity.txt', 'w').write(base64.b64decode(d['data']['identity']).decode())
print(base64.b64decode(d['data']['recipient']).decode())" >"$T/recipient"
chmod 600 "$T/identity.txt"
RECIPIENT=$(cat "$T/recipient")
ok "it holds an age identity whose recipient is its key recipient" sh -c \
	"[ \"\$(age-keygen -y '$T/identity.txt')\" = '$RECIPIENT' ]"
ok "it has no owner reference (deleting the schedule does not delete it)" jq_py "
assert not d['metadata'].get('ownerReferences'), d['metadata']
assert d['metadata']['annotations']['backupop.io/generated-for'] == '$NS/vault'" <"$T/idsecret.json"
has_recipient() { [ "$(k -n "$NS" get backupschedule vault -o jsonpath='{.status.recipient}')" = "$RECIPIENT" ]; }
ok "the schedule's status shows the recipient" wait_for 20 has_recipient
ok "an Event tells that the identity was made" wait_for 10 sh -c \
	"'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get events --field-selector involvedObject.name=vault,reason=IdentityGenerated -o name | grep -q ."

ok "a Secret of that name without an identity: Ready=False IdentitySecretInvalid" \
	wait_for 30 ready_is clash "False IdentitySecretInvalid"
k -n "$NS" get secret taken -o json >"$T/taken.json"
ok "... and it is left exactly as it was" jq_py "
import base64
assert d['metadata']['resourceVersion'] == '$TAKEN_RV', d['metadata']
assert list(d['data']) == ['notes'] and base64.b64decode(d['data']['notes']) == b'keep-me-9931', d['data']" <"$T/taken.json"

N=$(rname "$NS" vault)
ok "the runner Secret appears" wait_for 20 k -n "$SYS" get secret "$N"
k -n "$SYS" get secret "$N" -o json >"$T/runner-secret.json"
python3 -c "
import json, base64
d = json.load(open('$T/runner-secret.json'))['data']
c = json.loads(base64.b64decode(d['config.json']))
c['storage']['url'] = 'file://$T/store/id'
open('$T/config.json', 'w').write(json.dumps(c))
open('$T/age-identity.txt', 'w').write(base64.b64decode(d['age-identity.txt']).decode())"
chmod 600 "$T/config.json" "$T/age-identity.txt"
ok "the runner config encrypts to the recipient and restores with the identity file" jq_py "
e = d['encryption']
assert e['recipients'] == ['$RECIPIENT'], e
assert e['identityFile'] == 'age-identity.txt', e" <"$T/config.json"
ok "the identity in the runner's Secret is the generated one" cmp "$T/identity.txt" "$T/age-identity.txt"
SECRET_LINE=$(grep AGE-SECRET-KEY "$T/identity.txt")
k -n "$NS" get backupschedule vault -o json >"$T/sched.json"
ok "the identity is not in the controller's log, the schedule's status or any Event" sh -c "
! grep -q '$SECRET_LINE' '$T/a.log' && ! grep -q '$SECRET_LINE' '$T/sched.json' &&
! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' get events -A -o json | grep -q '$SECRET_LINE'"

# Play the kubelet: the runner with the Secret's files, its volume a local directory.
ok "the runner starts" start_runner "$T/config.json"
run() { backuprun vault "$@"; } # NAME ACTION [BACKUP]
run b1 backup
ok "a BackupRun backup succeeds" wait_for 60 phase_is b1 Succeeded
BID=$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.backupId}')
DATA=$(find "$T/store" -path "*$BID*" -name 'data*' | head -1)
diag "stored: ${DATA#"$T"/}"
ok "the stored data is age-encrypted" sh -c "head -c 40 '$DATA' | grep -q 'age-encryption.org/v1'"
ok "... and the real age decrypts it with the generated identity" sh -c \
	"age -d -i '$T/identity.txt' '$DATA' | cmp - '$T/data'"
run r1 restore "$BID"
ok "a BackupRun restore with the runner's identity succeeds" wait_for 60 phase_is r1 Succeeded
ok "... and gives back the data" cmp "$T/data" "$T/restored"
ok "the identity Secret was never rewritten" sh -c \
	"[ \"\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get secret vault-identity -o jsonpath='{.metadata.resourceVersion}')\" = '$(jq_py "print(d['metadata']['resourceVersion'])" <"$T/idsecret.json")' ]"

# a new controller (a restart, another leader) finds the Secret and keeps it
stop_ctl "$PID_a"
start_ctl b --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the second controller did not become ready"; exit 1; }
k -n "$NS" annotate backupschedule vault touched=yes >/dev/null   # a reconcile for sure
sleep 3
ok "after a controller restart the identity Secret is the same" sh -c \
	"[ \"\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get secret vault-identity -o jsonpath='{.metadata.resourceVersion}')\" = '$(jq_py "print(d['metadata']['resourceVersion'])" <"$T/idsecret.json")' ]"
ok "... and so is the recipient in the status" has_recipient
ok "... and only one IdentityGenerated Event was recorded" sh -c \
	"[ \"\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get events --field-selector involvedObject.name=vault,reason=IdentityGenerated -o name | wc -l)\" = 1 ]"

k -n "$NS" delete backupschedule vault --wait=false >/dev/null
gone() { ! k -n "$NS" get backupschedule vault >/dev/null 2>&1 && ! k -n "$SYS" get statefulset "$N" >/dev/null 2>&1; }
ok "the schedule deleted: it and its runner objects go" wait_for 30 gone
sleep 2
ok "... and the identity Secret stays" k -n "$NS" get secret vault-identity
done_testing
