#!/bin/bash
# The command line contract that scripts rely on: output formats, exit statuses,
# defaults, the config file, prune.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

store="$T/store"
S="file://$store"
echo one >"$T/one"; echo two >"$T/two"; echo three >"$T/three"

expect_exit 0 "backup prints only the id" bop backup --storage "$S" -i "$T/one"
id1=$(cat "$T/out")
is "... one line" "$(wc -l <"$T/out")" 1
ok "... shaped like 20261121T020000Z-k3f9" \
	grep -qE '^[0-9]{8}T[0-9]{6}Z-[0-9a-z]+$' "$T/out"
ok "... naming the backup's directory" test -f "$store/default/$id1/manifest.json"
sleep 1
id2=$(bop backup --storage "$S" --tag pinned -i "$T/two")
sleep 1
id3=$(bop backup --storage "$S" -i "$T/three")

expect_exit 0 "list" bop list --storage "$S"
ok "... has a header" grep -q '^ID ' "$T/out"
ok "... lists the three, oldest first" \
	test "$(awk 'NR > 1 { print $1 }' "$T/out" | tr '\n' ' ')" = "$id1 $id2 $id3 "
ok "... shows the tag" grep -q "^$id2 .*pinned" "$T/out"
expect_exit 0 "list --json" bop list --storage "$S" --json
ok "... parses as a JSON array of 3" python3 -c \
	'import json, sys; d = json.load(open(sys.argv[1])); assert isinstance(d, list) and len(d) == 3' \
	"$T/out"

expect_exit 0 "restore latest" bop restore --storage "$S" latest -o "$T/r"
ok "... is the newest backup" cmp "$T/r" "$T/three"
ok "restore by id" bop restore --storage "$S" "$id1" -o "$T/r1"
ok "... is that backup" cmp "$T/r1" "$T/one"
# The output is written on a thread of its own: its failures still fail the restore with
# the system's word for them, and a slow reader still gets every byte.
gen_random 5242880 "$T/big"
bop backup --storage "$S" --name big -i "$T/big" >/dev/null
expect_exit 1 "restore -o into a full device: 1" bop restore --storage "$S" --name big latest \
	-o /dev/full
err_says "... says why" "writing /dev/full: No space left on device"
expect_exit 1 "restore to a full standard output: 1" sh -c '"$0" -q restore "$@" >/dev/full' \
	"$BOP" --storage "$S" --name big latest
err_says "... says why" "writing output: No space left on device"
bop restore --storage "$S" --name big latest | { sleep 1; cat; } >"$T/slow"
is "restore to a slow reader: exit status 0" "${PIPESTATUS[0]}" 0
ok "... who gets every byte" cmp "$T/slow" "$T/big"
expect_exit 0 "verify latest" bop verify --storage "$S" latest
ok "... names the backup and says OK" grep -q "^$id3: OK" "$T/out"

# Not found: 3.
expect_exit 3 "restore from a missing storage directory: 3" \
	bop restore --storage "file://$T/nowhere" latest -o "$T/x"
err_says "... with a message" "backupop: error: .+"
ok "... and creates no storage directory" test ! -e "$T/nowhere/default"
expect_exit 3 "verify of an unknown id: 3" bop verify --storage "$S" 20200101T000000Z-zzzz
expect_exit 3 "restore from an empty name: 3" bop restore --storage "$S" --name empty latest -o "$T/x"

# Usage: 2.
expect_exit 2 "unknown option: 2" bop list --storage "$S" --frobnicate
err_says "... names it" "frobnicate"
expect_exit 2 "unknown command: 2" bop frobnicate
expect_exit 2 "restore without an id: 2" bop restore --storage "$S"
expect_exit 2 "bad compression: 2" bop backup --storage "$S" -c lzma -i "$T/one"
expect_exit 2 "option without its value: 2" bop backup --storage "$S" --tag
expect_exit 2 "-i and a command together: 2" bop backup --storage "$S" -i "$T/one" -- cat "$T/one"
expect_exit 2 "passphrase and recipients together: 2" bop backup --storage "$S" \
	-r age1qqqq --passphrase-file "$T/one" -i "$T/one"
expect_exit 2 "bad --keep-within: 2" bop prune --storage "$S" --keep-within 7x

# Help and version.
expect_exit 0 "version" "$BOP" version
ok "... prints the version" grep -qE '^backupop [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
expect_exit 0 "help" "$BOP" help
ok "... lists the exit statuses" grep -q "integrity failure" "$T/out"
expect_exit 0 "help restore" "$BOP" help restore
ok "... shows restore's usage" grep -q "^Usage: backupop restore" "$T/out"
expect_exit 0 "backup --help" "$BOP" backup --help
ok "... shows backup's options" grep -q -- "--recipient" "$T/out"
expect_exit 0 "prune -h" "$BOP" prune -h

# Keys: 5.
r1=$(bop keygen -o "$T/k1.txt")
bop keygen -o "$T/k2.txt" >/dev/null
echo "secret passphrase one" >"$T/p1"; echo "another secret phrase" >"$T/p2"
ide=$(bop backup --storage "$S" --name enc -r "$r1" -i "$T/one")
expect_exit 5 "restore with the wrong identity: 5" bop restore --storage "$S" --name enc \
	--identity "$T/k2.txt" latest -o "$T/x"
ok "... creates no file" test ! -e "$T/x"
expect_exit 5 "restore of an encrypted backup without a key: 5" bop restore --storage "$S" \
	--name enc latest -o "$T/x"
err_says "... says which flag to give" "--identity"
bop backup --storage "$S" --name pass --passphrase-file "$T/p1" --scrypt-work-factor 12 -i "$T/two" >/dev/null
expect_exit 5 "restore with the wrong passphrase: 5" bop restore --storage "$S" --name pass \
	--passphrase-file "$T/p2" latest -o "$T/x"
ok "... the passphrases appear in no message" sh -c '! grep -q -e "secret passphrase" -e "another secret" "$1"' sh "$T/err"
expect_exit 0 "restore with the right passphrase" bop restore --storage "$S" --name pass \
	--passphrase-file "$T/p1" latest -o "$T/x"
ok "... restores it" cmp "$T/x" "$T/two"

# Defaults: $BACKUPOP_STORAGE, then file://./backups; name "default".
mkdir "$T/cwd"
(cd "$T/cwd" && "$BOP" -q backup -i "$T/one" >"$T/id") 
ok "default storage is ./backups, name default" test -f "$T/cwd/backups/default/$(cat "$T/id")/manifest.json"
BACKUPOP_STORAGE="file://$T/envstore" bop backup -i "$T/one" >"$T/id"
ok "BACKUPOP_STORAGE is the default storage" test -f "$T/envstore/default/$(cat "$T/id")/manifest.json"

# The config file.
cat >"$T/config.yaml" <<YAML
storage: file://$T/cfgstore
name: from-config
compression: {algorithm: gzip, level: 9}
encryption:
  recipients: ["$r1"]
  identityFile: k1.txt
retention:
  keepLast: 1
  keepTags: [pinned]
tags: [nightly, cfg]
YAML
expect_exit 0 "backup with --config" bop --config "$T/config.yaml" backup -i "$T/two"
idc=$(cat "$T/out")
ok "... uses its storage, name and compression" test -f "$T/cfgstore/from-config/$idc/data.gz.age"
expect_exit 0 "list with --config" bop list --config "$T/config.yaml"
ok "... shows its tags" grep -q "nightly,cfg" "$T/out"
ok "... and retention labels" grep -q "LABELS" "$T/out"
expect_exit 0 "restore with --config (identityFile relative to the config)" \
	bop restore --config "$T/config.yaml" latest -o "$T/c"
ok "... restores it" cmp "$T/c" "$T/two"
expect_exit 0 "flags override the config" bop backup --config "$T/config.yaml" \
	--name other -c none -i "$T/one"
ok "... (name other, no compression)" test -f "$T/cfgstore/other/$(cat "$T/out")/data.age"
sed 's/keepLast/keepDayly/' "$T/config.yaml" >"$T/bad.yaml"
expect_exit 2 "an unknown config key: 2" bop list --config "$T/bad.yaml"
err_says "... named with its path and line" "bad.yaml:8: retention.keepDayly: unknown field"
printf 'compression:\n  level: high\n' >"$T/bad2.yaml"
expect_exit 2 "a config value of the wrong type: 2" bop list --config "$T/bad2.yaml"
err_says "... named with its path" "compression.level"
printf 'name: [unclosed\n' >"$T/bad3.yaml"
expect_exit 2 "invalid YAML: 2" bop list --config "$T/bad3.yaml"
expect_exit 2 "a missing config file: 2" bop list --config "$T/missing.yaml"

# Prune.
expect_exit 2 "prune without a rule refuses: 2" bop prune --storage "$S"
expect_exit 2 "prune with only zero rules refuses: 2" bop prune --storage "$S" --keep-last 0
expect_exit 0 "prune --dry-run --keep-last 1" bop prune --storage "$S" --keep-last 1 --dry-run
ok "... prints the plan with every backup" sh -c 'grep -q "$1" "$4" && grep -q "$2" "$4" && grep -q "$3" "$4"' \
	sh "$id1" "$id2" "$id3" "$T/out"
is "... removes nothing" "$(bop list --storage "$S" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 3
expect_exit 0 "prune --dry-run --json" bop prune --storage "$S" --keep-last 1 --dry-run --json
ok "... is a JSON plan" python3 -c \
	'import json, sys; d = json.load(open(sys.argv[1])); assert len(d) == 3 and all("keep" in e for e in d)' "$T/out"
expect_exit 0 "prune --keep-last 2" bop prune --storage "$S" --keep-last 2
bop list --storage "$S" --json >"$T/after.json"
ok "... leaves exactly the 2 newest" python3 -c \
	'import json, sys; d = json.dumps(json.load(open(sys.argv[1]))); assert sys.argv[2] not in d and sys.argv[3] in d and sys.argv[4] in d' \
	"$T/after.json" "$id1" "$id2" "$id3"
ok "... and removed the oldest's directory" test ! -e "$store/default/$id1/manifest.json"
expect_exit 0 "prune --keep-last 1 --keep-tag pinned" bop prune --storage "$S" --keep-last 1 --keep-tag pinned
ok "... keeps the tagged one" test -f "$store/default/$id2/manifest.json"

done_testing
