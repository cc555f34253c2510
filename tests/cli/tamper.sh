#!/bin/bash
# Tampered or damaged backups: restore and verify fail with exit status 4 and a clear
# message; a file target is not created, a command target is killed (it never sees EOF)
# and receives nothing of a damaged chunk.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

store="$T/store"
S="file://$store"
recipient=$(bop keygen -o "$T/key.txt")
gen_random 1048576 "$T/in"
id=$(bop backup --storage "$S" -r "$recipient" -i "$T/in")
data=$(data_file "$store" default "$id")
ok "backup made ($id)" test -f "$data"
cp "$data" "$T/pristine"
size=$(stat -c %s "$data")
# The age header ends with "--- <mac>\n"; then a 16-byte nonce and 64 KiB+16 chunks.
mac_line=$(grep -abo -m1 -- '^--- ' "$data" | cut -d: -f1)
header_end=$((mac_line + $(tail -c +$((mac_line + 1)) "$data" | head -n 1 | wc -c)))
payload=$((header_end + 16))
chunk=65552
diag "stored $size bytes, header $header_end bytes"

flip() { # flip FILE OFFSET: inverts one byte
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "$(printf '\\%03o' $((b ^ 0x55)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

damage_cases="header-mac middle-chunk last-chunk truncated truncated-at-chunk trailing-garbage"
for what in $damage_cases; do
	cp "$T/pristine" "$data"
	case $what in
	header-mac) flip "$data" $((mac_line + 6)) ;;
	middle-chunk) flip "$data" $((payload + 5 * chunk + 1000)) ;;
	last-chunk) flip "$data" $((size - 5)) ;;
	truncated) truncate -s $((size - 1000)) "$data" ;;
	truncated-at-chunk) truncate -s $((payload + 8 * chunk)) "$data" ;;
	trailing-garbage) head -c 100 /dev/urandom >>"$data" ;;
	esac
	expect_exit 4 "$what: verify fails with 4" bop verify --storage "$S" --identity "$T/key.txt" "$id"
	err_says "$what: verify says what is wrong" \
		"authenticat|integrity|corrupt|tamper|mismatch|checksum|truncat|damaged|trailing|invalid|does not match|incomplete|changed"
	rm -f "$T/out"
	expect_exit 4 "$what: restore -o fails with 4" bop restore --storage "$S" \
		--identity "$T/key.txt" "$id" -o "$T/restored"
	ok "$what: restore -o created no file" test ! -e "$T/restored"
	ok "$what: and left no temporary file" sh -c '! ls -A "$1" | grep -q restored' sh "$T"
	rm -f "$T/OUT" "$T/DONE"
	expect_exit 4 "$what: restore into a command fails with 4" bop restore --storage "$S" \
		--identity "$T/key.txt" "$id" -- sh -c 'cat > "$1" && touch "$2"' sh "$T/OUT" "$T/DONE"
	ok "$what: the command was killed, not given EOF" test ! -e "$T/DONE"
	if [ "$what" = middle-chunk ]; then
		[ -e "$T/OUT" ] || : >"$T/OUT"
		got=$(stat -c %s "$T/OUT")
		check "$what: the command got at most the chunks before the damage ($got bytes)" \
			$((got > 5 * 65536))
		ok "$what: and only the original's bytes" cmp -n "$got" "$T/OUT" "$T/in"
	fi
done
cp "$T/pristine" "$data"
ok "the pristine copy verifies" bop verify --storage "$S" --identity "$T/key.txt" "$id"

# The manifest records both checksums: editing one is detected.
manifest="$store/default/$id/manifest.json"
cp "$manifest" "$T/manifest.orig"
plain_sha=$(sha256sum <"$T/in" | cut -d' ' -f1)
stored_sha=$(sha256sum <"$data" | cut -d' ' -f1)
ok "the manifest records the plaintext SHA-256" grep -q "$plain_sha" "$manifest"
ok "the manifest records the stored SHA-256" grep -q "$stored_sha" "$manifest"
other=$(printf '%s' "$plain_sha" | tr '0-9a-f' '1-9a-f0')
sed -i "s/$plain_sha/$other/" "$manifest"
expect_exit 4 "edited plaintext sha256: verify fails with 4" \
	bop verify --storage "$S" --identity "$T/key.txt" "$id"
err_says "... naming a mismatch" "sha-?256|checksum|mismatch|does not match|integrity"
expect_exit 4 "edited plaintext sha256: restore -o fails with 4" \
	bop restore --storage "$S" --identity "$T/key.txt" "$id" -o "$T/restored"
ok "... and creates no file" test ! -e "$T/restored"
cp "$T/manifest.orig" "$manifest"
other=$(printf '%s' "$stored_sha" | tr '0-9a-f' '1-9a-f0')
sed -i "s/$stored_sha/$other/" "$manifest"
expect_exit 4 "edited stored sha256: verify fails with 4" \
	bop verify --storage "$S" --identity "$T/key.txt" "$id"
cp "$T/manifest.orig" "$manifest"
ok "the original manifest verifies again" bop verify --storage "$S" --identity "$T/key.txt" "$id"

done_testing
