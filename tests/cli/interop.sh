#!/bin/bash
# Interop with the real tools: what backupop stores decrypts with `age -d` and
# decompresses with `zstd -d` / `gzip -d`; keys from age-keygen work with backupop and
# identities from `backupop keygen` work with age.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

for tool in age age-keygen zstd gzip; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed (apt-get install age zstd gzip)"
done
diag "$(age --version 2>&1 | head -1) / $(zstd --version 2>&1 | head -1)"

store="$T/store"
S="file://$store"
gen_text 1500000 "$T/text"
gen_random 700000 "$T/rand"
cat "$T/text" "$T/rand" "$T/text" >"$T/in"

# Keys: one from each tool.
r1=$(bop keygen -o "$T/k1.txt")
ok "backupop keygen -o prints the recipient" test "${r1#age1}" != "$r1"
ok "its identity file is mode 0600" test "$(stat -c %a "$T/k1.txt")" = 600
ok "its identity file names the recipient" grep -qx "# public key: $r1" "$T/k1.txt"
age-keygen -o "$T/k2.txt" 2>/dev/null
r2=$(sed -n 's/^# public key: //p' "$T/k2.txt")
ok "age-keygen made a key" test -n "$r2"

# 1. zstd + age to a backupop recipient: age -d | zstd -d.
id=$(bop backup --storage "$S" -r "$r1" -i "$T/in")
data=$(data_file "$store" default "$id")
is "stored as data.zst.age" "${data##*/}" data.zst.age
ok "age -d -i <backupop key> | zstd -d gives the input" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k1.txt" "$data" "$T/in"
ok "zstd -t accepts the decrypted stream" sh -c 'age -d -i "$1" "$2" | zstd -t -q' sh "$T/k1.txt" "$data"

# 2. Two recipients, one from each tool: both decrypt with age, and with backupop.
id=$(bop backup --storage "$S" -r "$r1" -r "$r2" -i "$T/in")
data=$(data_file "$store" default "$id")
ok "multi-recipient: age -d -i <backupop key>" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k1.txt" "$data" "$T/in"
ok "multi-recipient: age -d -i <age-keygen key>" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k2.txt" "$data" "$T/in"
ok "multi-recipient: backupop restore --identity <age-keygen key>" \
	bop restore --storage "$S" --identity "$T/k2.txt" "$id" -o "$T/out1"
ok "... restores the input" cmp "$T/in" "$T/out1"
ok "multi-recipient: backupop restore --identity <backupop key>" \
	bop restore --storage "$S" --identity "$T/k1.txt" "$id" -o "$T/out2"
ok "... restores the input" cmp "$T/in" "$T/out2"

# 3. gzip + age to an age-keygen recipient: age -d | gzip -d.
id=$(bop backup --storage "$S" -c gzip -r "$r2" -i "$T/in")
data=$(data_file "$store" default "$id")
is "stored as data.gz.age" "${data##*/}" data.gz.age
ok "age -d -i <age-keygen key> | gzip -d gives the input" \
	sh -c 'age -d -i "$1" "$2" | gzip -d | cmp - "$3"' sh "$T/k2.txt" "$data" "$T/in"
ok "backupop verify with the age-keygen identity" \
	bop verify --storage "$S" --identity "$T/k2.txt" "$id"

# 4. --identity on backup encrypts to that identity's recipient.
id=$(bop backup --storage "$S" -c none --identity "$T/k2.txt" -i "$T/in")
data=$(data_file "$store" default "$id")
is "no compression + age: data.age" "${data##*/}" data.age
ok "age -d -i <age-keygen key> gives the input" \
	sh -c 'age -d -i "$1" "$2" | cmp - "$3"' sh "$T/k2.txt" "$data" "$T/in"

# 5. A recipients file with comments and blank lines.
printf '# backup keys\n\n%s\n%s\n' "$r1" "$r2" >"$T/recipients.txt"
id=$(bop backup --storage "$S" --recipients-file "$T/recipients.txt" -i "$T/in")
data=$(data_file "$store" default "$id")
ok "recipients file: age -d -i <age-keygen key>" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k2.txt" "$data" "$T/in"
ok "recipients file: age -d -i <backupop key>" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k1.txt" "$data" "$T/in"

# 6. Not encrypted: zstd -d / gzip -d alone.
id=$(bop backup --storage "$S" -i "$T/in")
data=$(data_file "$store" default "$id")
is "plain zstd: data.zst" "${data##*/}" data.zst
ok "zstd -d gives the input" sh -c 'zstd -d -q -c "$1" | cmp - "$2"' sh "$data" "$T/in"
id=$(bop backup --storage "$S" -c gzip --level 9 -i "$T/in")
data=$(data_file "$store" default "$id")
ok "gzip -d gives the input" sh -c 'gzip -d -c "$1" | cmp - "$2"' sh "$data" "$T/in"

# 7. keygen to stdout: the identity works with age; "Public key:" goes to stderr.
"$BOP" keygen >"$T/k3.txt" 2>"$T/k3.err"
r3=$(sed -n 's/^Public key: //p' "$T/k3.err")
ok "keygen to stdout reports the public key on stderr" grep -qx "# public key: $r3" "$T/k3.txt"
ok "age encrypts to it and decrypts with it" \
	sh -c 'age -r "$1" "$3" | age -d -i "$2" | cmp - "$3"' sh "$r3" "$T/k3.txt" "$T/rand"
ok "age-keygen -y derives the same recipient" test "$(age-keygen -y "$T/k3.txt")" = "$r3"
id=$(bop backup --storage "$S" -r "$r3" -i "$T/rand")
ok "backupop -r <keygen recipient> | age -d -i <keygen identity>" \
	sh -c 'age -d -i "$1" "$2" | zstd -d -q | cmp - "$3"' sh "$T/k3.txt" \
	"$(data_file "$store" default "$id")" "$T/rand"

# 8. keygen never overwrites a key.
cp "$T/k1.txt" "$T/k1.copy"
expect_exit 1 "keygen -o refuses an existing file" "$BOP" keygen -o "$T/k1.txt"
err_says "... and says so" "exists"
ok "... which is unchanged" cmp "$T/k1.txt" "$T/k1.copy"

done_testing
