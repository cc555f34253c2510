#!/bin/sh
# Interop with the real age (1.1) and age-keygen: what we encrypt, `age -d` decrypts, and
# what `age -r`/`age -R`/`age -p` encrypt, we decrypt; identity files go both ways.
# age reads passphrases only from a terminal, so age -p / age -d of passphrase files run on
# a pseudo-terminal (age-pty.py); that part is skipped without python3.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

AGE=$(command -v age) || skip_all "age is not installed (apt-get install age)"
KEYGEN=$(command -v age-keygen) || skip_all "age-keygen is not installed (apt-get install age)"
TOOL=$BOP_BUILD_ROOT/tests/age/agetool
PTY=$BOP_SOURCE_ROOT/tests/age/age-pty.py
[ -x "$TOOL" ] || skip_all "agetool was not built"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bop-age-interop.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
cd "$tmp" || exit 1
TAP_LOG=$tmp/log
diag "$("$AGE" --version 2>&1 | head -1) at $AGE"

# inputs: empty, one byte, exactly one chunk, and several chunks plus a bit
: > p0
printf x > p1
head -c 65536 /dev/urandom > p64k
head -c 3000001 /dev/urandom > p3m
SIZES="p0 p1 p64k p3m"

"$KEYGEN" -o k1.txt 2>/dev/null
"$KEYGEN" -o k2.txt 2>/dev/null
R1=$("$KEYGEN" -y k1.txt)
R2=$("$KEYGEN" -y k2.txt)
ok "agetool keygen writes an identity file" sh -c "'$TOOL' keygen > ours.txt"
ROURS=$("$KEYGEN" -y ours.txt 2>/dev/null)
check "age-keygen -y reads our identity file" "$([ -n "$ROURS" ] && echo 0 || echo 1)"
ok "our recipient of an age-keygen identity is age-keygen's" \
	sh -c "[ \"\$('$TOOL' recipient k1.txt)\" = '$R1' ]"
ok "our recipient of our identity is age-keygen's" \
	sh -c "[ \"\$('$TOOL' recipient ours.txt)\" = '$ROURS' ]"

roundtrip_ok() { # name, encrypt command, decrypt command, plain file
	TAP_N=$((TAP_N + 1))
	if sh -c "$2" < "$4" > "$tmp/c" 2>"$tmp/log" && sh -c "$3" < "$tmp/c" > "$tmp/d" 2>>"$tmp/log" &&
			cmp -s "$tmp/d" "$4"; then
		echo "ok $TAP_N - $1"
	else
		echo "not ok $TAP_N - $1"
		TAP_FAILED=$((TAP_FAILED + 1))
		sed 's/^/# /' "$tmp/log" | tail -10
	fi
}

# ours -> age
for p in $SIZES; do
	roundtrip_ok "ours to age -d, 3 recipients, $p, age-keygen identity 2" \
		"'$TOOL' encrypt -r $R1 -r $R2 -r $ROURS" "'$AGE' -d -i k2.txt" $p
done
roundtrip_ok "ours to age -d, decrypted with our identity file" \
	"'$TOOL' encrypt -r $R1 -r $ROURS" "'$AGE' -d -i ours.txt" p3m
printf '# backup recipients\n\n%s\n%s\n# end\n' "$R1" "$R2" > recipients.txt
roundtrip_ok "ours with a recipients file (-R) to age -d" \
	"'$TOOL' encrypt -R recipients.txt" "'$AGE' -d -i k1.txt" p64k
roundtrip_ok "ours encrypting to an identity file's own recipient (-i) to age -d" \
	"'$TOOL' encrypt -i k1.txt" "'$AGE' -d -i k1.txt" p1

# age -> ours
for p in $SIZES; do
	roundtrip_ok "age -r (2 recipients), $p, to ours with age-keygen identity 1" \
		"'$AGE' -r $R1 -r $R2" "'$TOOL' decrypt -i k1.txt" $p
done
roundtrip_ok "age -R recipients file to ours" "'$AGE' -R recipients.txt" \
	"'$TOOL' decrypt -i k2.txt" p3m
roundtrip_ok "age -r our recipient to ours with our identity file" "'$AGE' -r $ROURS" \
	"'$TOOL' decrypt -i ours.txt" p3m
cat k1.txt k2.txt > both.txt
roundtrip_ok "age -i identity file with two identities, to ours with it" \
	"'$AGE' -r $R2" "'$TOOL' decrypt -i both.txt" p64k

# failures are reported as such
"$AGE" -r "$R1" < p64k > c1.age
"$TOOL" decrypt -i k2.txt < c1.age > /dev/null 2> err; st=$?
check "age file, wrong identity: exit 3 (no matching key)" "$([ $st -eq 3 ] && echo 0 || echo 1)"
ok "wrong identity: the message says no identity matches" grep -q "no identity matches" err
head -c 60000 c1.age > cut.age
"$TOOL" decrypt -i k1.txt < cut.age > out 2> err; st=$?
check "truncated age file: exit 4 (integrity)" "$([ $st -eq 4 ] && echo 0 || echo 1)"
check "truncated age file: nothing released" "$([ ! -s out ] && echo 0 || echo 1)"
"$TOOL" encrypt -r "$R1" < p3m > c2.age
head -c 100000 c2.age > cut2.age
"$AGE" -d -i k1.txt cut2.age > out 2>/dev/null; st=$?
check "our file truncated: age -d fails too" "$([ $st -ne 0 ] && echo 0 || echo 1)"

# passphrases, through a pseudo-terminal for age
printf 'correct horse battery staple\n' > pass.txt
PY=$(command -v python3 || true)
if [ -z "$PY" ] || ! "$PY" -c 'import pty' 2>/dev/null; then
	skip "age -p needs a terminal: python3 with pty is not available"
	skip "age -d of a passphrase file needs a terminal: python3 with pty is not available"
else
	TAP_N=$((TAP_N + 1))
	if "$PY" "$PTY" pass.txt "$AGE" -p -o cp.age p64k 2>log &&
			"$TOOL" decrypt -p-file pass.txt < cp.age > d 2>>log && cmp -s d p64k; then
		echo "ok $TAP_N - age -p (work factor 18, via a pty) decrypts with our passphrase file"
	else
		echo "not ok $TAP_N - age -p (via a pty) to ours"; TAP_FAILED=$((TAP_FAILED + 1))
		sed 's/^/# /' log | tail -10
	fi
	TAP_N=$((TAP_N + 1))
	if "$TOOL" encrypt -p-file pass.txt -w 12 < p3m > cq.age 2>log &&
			"$PY" "$PTY" pass.txt "$AGE" -d -o d cq.age 2>>log && cmp -s d p3m; then
		echo "ok $TAP_N - our passphrase file (work factor 12) decrypts with age -d (via a pty)"
	else
		echo "not ok $TAP_N - ours (passphrase) to age -d"; TAP_FAILED=$((TAP_FAILED + 1))
		sed 's/^/# /' log | tail -10
	fi
	printf 'wrong\n' > wrong.txt
	"$TOOL" decrypt -p-file wrong.txt < cq.age > /dev/null 2> err; st=$?
	check "wrong passphrase: exit 3 (no matching key)" "$([ $st -eq 3 ] && echo 0 || echo 1)"
fi

done_testing
