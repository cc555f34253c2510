#!/bin/bash
# `backupop backup/restore --config FILE` with an engine block (the exec engine, real
# commands): the config format shared with backupop-runner drives the CLI.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-runner-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

head -c 300000 /dev/urandom >"$T/input"
printf 'line one\nline two\n' >>"$T/input"
"$BOP" keygen -o "$T/key.txt" >/dev/null 2>&1
cat >"$T/app.yaml" <<YAML
namespace: shop
scheduleName: orders
storage:
  url: file://$T/store
engine:
  exec:
    backupCommand: [sh, -c, 'cat "\$SRC"']
    restoreCommand: [sh, -c, 'cat >"\$DST"']
    env: {SRC: $T/input, DST: $T/restored, APP_PASSWORD: very-secret-pw}
    timeoutSeconds: 60
compression: {algorithm: zstd, level: 5}
encryption: {identityFile: key.txt}
retention: {keepLast: 1}
tags: [from-engine]
YAML

"$BOP" -q backup --config "$T/app.yaml" >"$T/id" 2>"$T/err"
check "backup --config runs the configured engine" $?
id=$(cat "$T/id")
ok "... into <namespace>/<scheduleName>" test -f "$T/store/shop/orders/$id/manifest.json"
ok "... encrypted, zstd" test -f "$T/store/shop/orders/$id/data.zst.age"
ok "... the manifest names the engine" grep -q '"exec"' "$T/store/shop/orders/$id/manifest.json"
ok "... the manifest has the tag" grep -q 'from-engine' "$T/store/shop/orders/$id/manifest.json"
"$BOP" -q list --config "$T/app.yaml" >"$T/list" 2>&1
ok "list --config shows it" grep -q "$id" "$T/list"
"$BOP" -q restore --config "$T/app.yaml" latest 2>"$T/err"
check "restore --config ID restores through the engine" $?
ok "... the engine received exactly the bytes" cmp -s "$T/input" "$T/restored"
rm -f "$T/restored"
"$BOP" -q restore --config "$T/app.yaml" "$id" -o "$T/file" 2>"$T/err"
ok "restore --config -o FILE still writes the file" cmp -s "$T/input" "$T/file"
ok "... and not through the engine" test ! -e "$T/restored"
"$BOP" -q verify --config "$T/app.yaml" latest >/dev/null 2>&1
check "verify --config" $?

# A producer that fails: no backup.
sed 's|cat "[$]SRC"|echo partial; exit 3|' "$T/app.yaml" >"$T/fail.yaml"
"$BOP" -q backup --config "$T/fail.yaml" >/dev/null 2>"$T/err"
st=$?
ok "a failing engine command: exit 7 (got $st)" test "$st" -eq 7
ok "... no new backup" test "$(find "$T/store/shop/orders" -name manifest.json | wc -l)" -eq 1
ok "... and no data left behind" test "$(find "$T/store/shop/orders" -name 'data*' | wc -l)" -eq 1
ok "... the secret env value is not in the message" sh -c '! grep -q very-secret-pw "$1"' sh "$T/err"

# Config errors name the field and line.
printf 'engine:\n  exec:\n    backupComand: [cat]\n' >"$T/bad.yaml"
"$BOP" -q backup --config "$T/bad.yaml" >/dev/null 2>"$T/err"
st=$?
ok "an unknown engine field: exit 2 (got $st)" test "$st" -eq 2
ok "... named with file, line and path" grep -q 'bad.yaml:3: engine.exec: .*backupComand' "$T/err"
printf 'storage: {url: "file:///x", secretAcessKey: abcdef}\n' >"$T/bad2.yaml"
"$BOP" -q list --config "$T/bad2.yaml" >/dev/null 2>"$T/err"
ok "an unknown storage field: named" grep -q 'bad2.yaml:1: storage.secretAcessKey: unknown field' "$T/err"
done_testing
