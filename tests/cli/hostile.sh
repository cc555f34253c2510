#!/bin/bash
# What a hostile environment or a careless user does to restore, verify and backup
# (issue 9): device nodes, FIFOs and symlinks as restore targets, storage URL typos,
# FIFOs in the storage, a manifest that understates a zstd bomb, a closed stdin.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

store="$T/store"
S="file://$store"
gen_text 200000 "$T/in"
id=$(bop backup --storage "$S" -i "$T/in")
ok "a backup to restore ($id)" test -n "$id"

# ---- finding 1: restore -o never replaces what it did not create ----

if [ "$(id -u)" = 0 ]; then
	mknod "$T/mynull" c 1 3
	expect_exit 0 "finding 1: restore -o onto a device node succeeds" \
		bop restore --storage "$S" "$id" -o "$T/mynull"
	ok "finding 1: restore -o onto a device node writes in place (still a device)" \
		test -c "$T/mynull"
	is "finding 1: and still the same device (1:3)" "$(stat -c %t:%T "$T/mynull")" "1:3"
	ok "finding 1: and left no temporary file" sh -c '! ls -A "$1" | grep -q "mynull.tmp-"' sh "$T"
else
	skip "finding 1: a device node target needs root to mknod"
fi

mkfifo "$T/fifo"
timeout 30 cat "$T/fifo" >"$T/from-fifo" &
reader=$!
expect_exit 0 "finding 1: restore -o onto a FIFO succeeds" \
	timeout 30 "$BOP" -q restore --storage "$S" "$id" -o "$T/fifo"
wait "$reader"
ok "finding 1: restore -o onto a FIFO writes into it (its reader got the data)" \
	cmp "$T/from-fifo" "$T/in"
ok "finding 1: and the FIFO is still a FIFO" test -p "$T/fifo"

printf 'old\n' >"$T/real"
ln -s real "$T/link"
expect_exit 0 "finding 1: restore -o onto a symlink succeeds" \
	bop restore --storage "$S" "$id" -o "$T/link"
ok "finding 1: restore -o onto a symlink keeps the symlink" test -L "$T/link"
is "finding 1: and it still points where it did" "$(readlink "$T/link")" "real"
ok "finding 1: and its target holds the restored data" cmp "$T/real" "$T/in"

expect_exit 0 "finding 1: restore -o /dev/stdout into a pipe succeeds" \
	sh -c '"$@" | cat >"$0"' "$T/via-stdout" "$BOP" -q restore --storage "$S" "$id" -o /dev/stdout
ok "finding 1: restore -o /dev/stdout writes into the pipe" cmp "$T/via-stdout" "$T/in"
ok "finding 1: and /dev/stdout is still a symlink" test -L /dev/stdout

ln -s nowhere "$T/dangling"
expect_exit 2 "finding 1: restore -o onto a dangling symlink is refused" \
	bop restore --storage "$S" "$id" -o "$T/dangling"
err_says "finding 1: the error names the symlink" "symbolic link"
ok "finding 1: the dangling symlink was not replaced" test -L "$T/dangling"
ok "finding 1: nothing was created where it points" test ! -e "$T/nowhere"

mkdir "$T/adir"
expect_exit 2 "finding 1: restore -o onto a directory is refused" \
	bop restore --storage "$S" "$id" -o "$T/adir"
err_says "finding 1: the error says it is a directory" "directory"

printf 'old\n' >"$T/regular"
expect_exit 0 "finding 1: restore -o onto a regular file replaces it" \
	bop restore --storage "$S" "$id" -o "$T/regular"
ok "finding 1: the regular file holds the restored data" cmp "$T/regular" "$T/in"

# ---- finding 9: a storage URL typo never writes to local disk ----

mkdir "$T/cwd"
# A malformed URL is a usage error (2); a well-formed one of an unknown scheme fails (1).
for typo in 's3:/bucket/x 2' ':::: 2' 's3:bucket 2' '1s3://bucket 2' 'foo://x 1'; do
	url=${typo% *}
	expect_exit "${typo##* }" "finding 9: backup --storage '$url' fails" \
		sh -c 'cd "$1" && shift && "$@"' sh "$T/cwd" "$BOP" -q backup --storage "$url" -i "$T/in"
	err_says "finding 9: the error for '$url' says the URL is wrong" "URL|scheme"
	is "finding 9: '$url' created nothing" "$(ls -A "$T/cwd")" ""
done
expect_exit 0 "finding 9: a relative path with a colon after a slash is still a path" \
	sh -c 'cd "$1" && shift && "$@"' sh "$T/cwd" "$BOP" -q backup --storage ./a:b -i "$T/in"
ok "finding 9: and it is stored there" test -d "$T/cwd/a:b/default"

# ---- finding 11: FIFOs in the storage do not block verify or restore ----

cp -r "$store" "$T/store2"
# fifo_in_place WHAT PATH: PATH (of the copy's backup) becomes a FIFO while it is checked.
fifo_in_place() {
	mv "$2" "$T/saved"
	mkfifo "$2"
	expect_exit 1 "finding 11: verify with a FIFO as $1 fails, not hangs" \
		timeout 20 "$BOP" -q verify --storage "file://$T/store2" "$id"
	err_says "finding 11: the error says $1 is not a regular file" "not a regular file"
	expect_exit 1 "finding 11: restore with a FIFO as $1 fails, not hangs" \
		timeout 20 "$BOP" -q restore --storage "file://$T/store2" "$id" -o "$T/out-fifo"
	ok "finding 11: and created no output" test ! -e "$T/out-fifo"
	rm "$2"
	mv "$T/saved" "$2"
}
fifo_in_place "the data object" "$(data_file "$T/store2" default "$id")"
fifo_in_place manifest.json "$T/store2/default/$id/manifest.json"

# ---- finding 12: decoding stops one byte past the declared size ----

gen_random 65536 "$T/small"
bomb_store="$T/bomb"
bid=$(bop backup --storage "file://$bomb_store" -i "$T/small")
bdata=$(data_file "$bomb_store" default "$bid")
head -c 50000000 /dev/zero | zstd -q -c >"$bdata"
bsize=$(stat -c %s "$bdata")
bsha=$(sha256sum "$bdata" | cut -d' ' -f1)
bman="$bomb_store/default/$bid/manifest.json"
# The stored object's own size and hash, so that only the plaintext size is a lie.
awk -v size="$bsize" -v sha="$bsha" '
	/"stored": \{/ { stored = 1 }
	stored && /"bytes":/ { sub(/[0-9]+/, size) }
	stored && /"sha256":/ { sub(/"[0-9a-f]{64}"/, "\"" sha "\""); stored = 0 }
	{ print }' "$bman" >"$T/bomb-manifest"
cat "$T/bomb-manifest" >"$bman"
diag "bomb: $bsize stored bytes decompress to 50000000, the manifest says 65536"
expect_exit 4 "finding 12: restore of a zstd bomb fails with the integrity status" \
	bop restore --storage "file://$bomb_store" "$bid" -- sh -c 'cat >"$1"' sh "$T/bomb-out"
err_says "finding 12: the error says the data is larger than declared" "more than|larger|size"
got=$(stat -c %s "$T/bomb-out" 2>/dev/null || echo 0)
check "finding 12: the restore command received at most 65537 bytes (got $got)" \
	$((got > 65537))
expect_exit 4 "finding 12: verify of a zstd bomb fails with the integrity status" \
	bop verify --storage "file://$bomb_store" "$bid"
err_says "finding 12: verify says the data is larger than declared" "more than|larger|size"

# ---- finding 16: a closed stdin is an error, not an empty backup ----

cstore="$T/closed"
expect_exit 2 "finding 16: backup with stdin closed fails" \
	bop backup --storage "file://$cstore" <&-
err_says "finding 16: the error says standard input is closed" "standard input is closed"
expect_exit 0 "finding 16: list runs" bop list --storage "file://$cstore"
is "finding 16: no backup was made" "$(grep -cE '[0-9]{8}T[0-9]{6}Z-' "$T/out")" "0"
is "finding 16: nothing was left in the storage" "$(leftovers "$cstore")" ""
expect_exit 2 "finding 16: backup -i - with stdin closed fails too" \
	bop backup --storage "file://$cstore" -i - <&-
err_says "finding 16: and says standard input is closed" "standard input is closed"
expect_exit 0 "finding 16: a closed stdout or stderr does not break a restore" \
	sh -c '"$@" 2>&-' sh "$BOP" -q restore --storage "$S" "$id" -o "$T/closed-err"
ok "finding 16: and the data is restored" cmp "$T/closed-err" "$T/in"

# ---- finding 17: a backup whose data is removed while it is written fails as a conflict ----

vstore="$T/vanish"
( gen_random 2000000 /dev/stdout; sleep 3; gen_random 1000 /dev/stdout ) |
	"$BOP" -q backup --storage "file://$vstore" --name app/db >"$T/vanish.out" 2>"$T/vanish.err" &
vpid=$!
for _ in $(seq 100); do
	vdir=$(find "$vstore/app/db" -mindepth 1 -maxdepth 1 -type d -name '2*' 2>/dev/null | head -1)
	[ -n "$vdir" ] && [ -n "$(ls -A "$vdir" 2>/dev/null)" ] && break
	sleep 0.05
done
ok "finding 17: the slow backup is writing ($vdir)" test -n "$vdir"
rm -rf "$vdir"
vrc=0
wait "$vpid" || vrc=$?
is "finding 17: a backup whose data was removed meanwhile exits 6 (conflict), not 3" "$vrc" "6"
ok "finding 17: and says its data was removed while it was being written" \
	grep -qi "removed by someone else.*while it was being written" "$T/vanish.err"

done_testing
