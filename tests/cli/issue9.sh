#!/bin/bash
# Issue 9 findings seen through the backupop command line: children do not outlive a
# killed backupop (15), multi-line secrets never reach the output (14), config and
# argument errors say what is wrong (11, 17).
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

store="$T/store"
S="file://$store"

# --- finding 15: kill -9 of backupop mid-backup takes its producer with it
marker="bop-orphan-$$-$RANDOM"
nap="25.$((RANDOM % 900 + 100))"
"$BOP" -q backup --storage "$S" --name orphan -- sh -c "sleep $nap; echo late # $marker" \
	>/dev/null 2>&1 &
cli=$!
wait_running "$nap"
ok "finding 15: the producer and its child are running" pgrep -f "sleep $nap"
kill -9 "$cli"
wait "$cli" 2>/dev/null
left=$(survivors "$nap" "$marker")
is "finding 15: within 2 s of kill -9 of backupop no process of the producer remains" "$left" ""

# --- finding 14: a multi-line secret in an exec engine's env, echoed to stderr
pad=$(head -c 1020 /dev/zero | tr '\0' x)
cat >"$T/secret.yaml" <<YAML
storage: '$S'
name: secret
engine:
  exec:
    backupCommand: [sh, -c, 'printf "%s\n" "\$DB_SECRET" >&2; printf "%s%s\n" "$pad" "\$DB_SECRET" >&2; printf "%s%s\n" "$pad" "\$DB_TOKEN" >&2; echo data']
    env: {DB_SECRET: "multiAAAA\nlineBBBB", DB_TOKEN: "tokenCCCCDDDD"}
YAML
expect_exit 0 "an exec backup whose command prints its secrets to stderr" \
	"$BOP" --log-format text backup --config "$T/secret.yaml"
ok "... its stderr lines are logged" grep -q "xxxxxxxx" "$T/err"
leaks=$(cat "$T/out" "$T/err" | grep -oE "multiAAAA|lineBBBB|tokenCCCCDDDD|multiA|BBBB|CCCCDDDD" | sort -u | tr '\n' ' ')
is "finding 14: neither line of a multi-line secret appears, nor a secret cut at the line buffer" "$leaks" ""
printf 'storage: %s\nname: esc\nengine:\n  exec:\n    backupCommand: [sh, -c, "printf \x27a\\\\033[2Jb\\\\n\x27 >&2; echo data"]\n' "$S" >"$T/esc.yaml"
expect_exit 0 "a backup whose command writes an escape sequence to stderr" \
	"$BOP" --log-format text backup --config "$T/esc.yaml"
ok "finding 17: the text log shows it escaped" grep -qF 'a\x1b[2Jb' "$T/err"
ok "... and no raw escape reaches the terminal" sh -c "! grep -q \"\$(printf '\\033')\" '$T/err'"
expect_exit 0 "... also with JSON logs" "$BOP" --log-format json backup --config "$T/secret.yaml"
leaks=$(cat "$T/out" "$T/err" | grep -oE "multiAAAA|lineBBBB|tokenCCCCDDDD" | sort -u | tr '\n' ' ')
is "finding 14: no line of the secret in JSON logs" "$leaks" ""

# --- finding 11: deep nesting is refused at once
python3 -c 'import sys; sys.stdout.write("tags: " + "[" * 500000 + "]" * 500000 + "\n")' >"$T/deep.yaml"
expect_exit 2 "finding 11: a 1 MB nested config is a config error" bop list --config "$T/deep.yaml"
err_says "... that says nesting deeper than 64 levels" "deep.yaml:1: nesting deeper than 64 levels"

# --- finding 17
printf 'storage: {region: x}\n' >"$T/region.yaml"
expect_exit 2 "finding 17: storage settings without a url are a config error" \
	bop list --config "$T/region.yaml"
err_says "... that says storage.url is required" "storage\.url required"

printf 'name: ~\nstorage: %s\n' "$S" >"$T/null.yaml"
expect_exit 2 "finding 17: name: ~ is refused" bop list --config "$T/null.yaml"
err_says "... name must be a string" "null.yaml:1: name: must be a string"

printf 'name: a\nstorage: %s\nname: b\n' "$S" >"$T/dup.yaml"
expect_exit 2 "finding 17: a duplicate key is refused" bop list --config "$T/dup.yaml"
err_says "... naming the key and line" "dup.yaml:3: name: duplicate key 'name'"

printf 'name: a\n---\nstorage: %s\n' "$S" >"$T/multi.yaml"
expect_exit 2 "finding 17: a second YAML document is refused" bop list --config "$T/multi.yaml"
err_says "... naming the line" "multi.yaml:2: a second YAML document"

expect_exit 2 "finding 17: --name with control characters is refused" \
	bop backup --storage "$S" --name "$(printf 'a\033[2Jb')" -i /dev/null
err_says "... and the message shows them escaped" 'a\\x1b\[2Jb'
ok "... no raw escape reaches the terminal" sh -c "! grep -q \"\$(printf '\\033')\" '$T/err'"

cat >"$T/pwfile.yaml" <<YAML
storage: '$S'
engine:
  postgres: {database: app, passwordFile: /nonexistent/pgpass-$marker}
YAML
expect_exit 2 "finding 17: a postgres engine whose passwordFile is missing" \
	bop list --config "$T/pwfile.yaml"
err_says "... the error shows the passwordFile path, not [REDACTED]" "/nonexistent/pgpass-$marker"
done_testing
