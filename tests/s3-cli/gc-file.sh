#!/bin/bash
# `backupop gc` on file:// storage: the temporary files of interrupted writes
# ("<name>.tmp-<pid>-XXXXXX") under the catalog are leftovers when their writer has exited
# or when they were last written longer ago than --older-than; a running writer's fresh
# file, other catalogs, objects and look-alike names are left alone. Also the command's
# usage errors. Needs no S3 server.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-gc.XXXXXX") || exit 1
sleeper=
trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; rm -rf "$T"' EXIT
TAP_LOG="$T/tap.log"
unset BACKUPOP_STORAGE
cd "$T" || exit 1
S="file://$T/store"

expect_exit() {
	local want=$1 name=$2 got=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || got=$?
	TAP_N=$((TAP_N + 1))
	if [ "$got" -eq "$want" ]; then echo "ok $TAP_N - $name"; else
		echo "not ok $TAP_N - $name (exit status $got, expected $want)"
		TAP_FAILED=$((TAP_FAILED + 1)); sed 's/^/# stderr: /' "$T/err" | tail -5; fi
}
is() {
	TAP_N=$((TAP_N + 1))
	if [ "$2" = "$3" ]; then echo "ok $TAP_N - $1"; else
		echo "not ok $TAP_N - $1 (got '$2', expected '$3')"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}

# A pid that is certainly not running: a child that has exited and been reaped.
sh -c 'exit 0' & dead=$!
wait "$dead"
# A writer that is still running.
sleep 300 & sleeper=$!

# One real backup, so that the catalog holds an object and a manifest.
echo "some data" >"$T/in"
expect_exit 0 "a backup to file storage" "$BOP" -q backup --storage "$S" --name db -i "$T/in"
id=$(cat "$T/out")
cat_dir="$T/store/db"
mkdir -p "$cat_dir/20261121T000000Z-aaaa" "$cat_dir/20261120T000000Z-bbbb" "$cat_dir/deep/er/20261120T000000Z-cccc" \
	"$T/store/db2/20261120T000000Z-dddd" "$T/store/other"
dead_tmp="$cat_dir/20261121T000000Z-aaaa/data.zst.tmp-$dead-Ab12Cd"
live_tmp="$cat_dir/$id/manifest.json.tmp-$sleeper-xYz789"
old_live_tmp="$cat_dir/20261120T000000Z-bbbb/data.tmp-$sleeper-OLDold"
# finding 4: a nested catalog's and a prefix-sharing sibling's leftovers are theirs.
nested_tmp="$cat_dir/deep/er/20261120T000000Z-cccc/data.tmp-$dead-NeSt01"
sibling_tmp="$T/store/db2/20261120T000000Z-dddd/data.tmp-$dead-SiBl01"
other_tmp="$T/store/other/data.tmp-$dead-Zz99zz"
lookalike="$cat_dir/deep/notes.tmp-12-short"
for f in "$dead_tmp" "$live_tmp" "$old_live_tmp" "$other_tmp" "$lookalike" "$nested_tmp" "$sibling_tmp"; do
	echo partial >"$f"
done
touch -d '3 days ago' "$old_live_tmp" "$nested_tmp" "$sibling_tmp"

expect_exit 0 "gc --dry-run succeeds" "$BOP" gc --storage "$S" --name db --dry-run
sort "$T/out" >"$T/found"
is "it lists the dead writer's file and the one older than 24h" "$(tr '\n' '|' <"$T/found")" \
	"db/20261120T000000Z-bbbb/data.tmp-$sleeper-OLDold|db/20261121T000000Z-aaaa/data.zst.tmp-$dead-Ab12Cd|"
grep -q "nothing was removed" "$T/err"
is "it says it removed nothing" $? 0
is "and they are still there" "$(ls "$dead_tmp" "$old_live_tmp" 2>/dev/null | wc -l)" 2

expect_exit 0 "gc --older-than 4d succeeds" "$BOP" gc --storage "$S" --name db --older-than 4d
is "it removes only the dead writer's file" "$(cat "$T/out")" \
	"db/20261121T000000Z-aaaa/data.zst.tmp-$dead-Ab12Cd"
grep -q "removed 1 leftover" "$T/err"
is "and says how many it removed" $? 0
[ ! -e "$dead_tmp" ] && [ ! -e "$cat_dir/20261121T000000Z-aaaa" ]
is "the file is gone, and so is the directory it left empty" $? 0
[ -e "$old_live_tmp" ]
is "the 3-day-old file of a running writer is kept" $? 0

expect_exit 0 "gc (default 24h) succeeds" "$BOP" -q gc --storage "$S" --name db
is "it removes the file older than 24h" "$(cat "$T/out")" "db/20261120T000000Z-bbbb/data.tmp-$sleeper-OLDold"
[ -e "$live_tmp" ] && [ -e "$other_tmp" ] && [ -e "$lookalike" ]
is "a running writer's fresh file, another catalog's and a look-alike name are kept" $? 0

expect_exit 0 "gc --older-than 0 succeeds" "$BOP" -q gc --storage "$S" --name db --older-than 0
is "it takes every temporary file, even a running writer's" "$(cat "$T/out")" \
	"db/$id/manifest.json.tmp-$sleeper-xYz789"
expect_exit 0 "the backup still verifies" "$BOP" -q verify --storage "$S" --name db latest
expect_exit 0 "gc of the other catalog" "$BOP" -q gc --storage "$S" --name other --older-than 0
is "takes its file" "$(cat "$T/out")" "other/data.tmp-$dead-Zz99zz"
[ -e "$nested_tmp" ] && [ -e "$sibling_tmp" ]
is "finding 4: gc --older-than 0 of db leaves db/deep/er's and db2's old leftovers alone" $? 0
expect_exit 0 "gc of the nested catalog" "$BOP" -q gc --storage "$S" --name db/deep/er --older-than 0
is "takes its own leftover" "$(cat "$T/out")" "db/deep/er/20261120T000000Z-cccc/data.tmp-$dead-NeSt01"
expect_exit 0 "gc with nothing to do" "$BOP" gc --storage "$S" --name db
grep -q "removed 0 leftover" "$T/err"
is "says it removed none" $? 0
expect_exit 0 "gc of a storage that does not exist yet" "$BOP" -q gc --storage "file://$T/none" --name db
is "finds nothing" "$(cat "$T/out")" ""

expect_exit 2 "a bad --older-than is a usage error" "$BOP" gc --storage "$S" --older-than 3x
grep -q "older-than" "$T/err"
is "naming the option" $? 0
expect_exit 2 "an argument is a usage error" "$BOP" gc --storage "$S" extra
expect_exit 0 "backupop help lists gc" "$BOP" help
grep -q "^  gc " "$T/out"
is "with its summary" $? 0
expect_exit 0 "backupop help gc" "$BOP" help gc
grep -q -- "--older-than DURATION" "$T/out"
is "documents --older-than" $? 0
done_testing
