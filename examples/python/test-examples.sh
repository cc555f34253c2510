#!/bin/bash
# The Python examples, run as a user would: a backup taken with the backupop CLI is
# drilled by restore_drill.py (and a tampered one fails the drill), and custom_backend.py
# does a backup and a verified restore through its Python storage backend.
# Environment: PYTHON, PYTHONPATH (the built package), BOP_SOURCE_ROOT, BOPCLI.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
EX="$BOP_SOURCE_ROOT/examples/python"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
command -v age-keygen >/dev/null || skip_all "age-keygen is not installed"

age-keygen -o "$T/key" 2>/dev/null
head -c 3000000 /dev/urandom >"$T/data"
"$BOPCLI" backup -q --storage "file://$T/store" --name db --identity "$T/key" \
	-i "$T/data" >/dev/null 2>&1
ok "restore_drill.py passes on a fresh encrypted backup" \
	"$PYTHON" "$EX/restore_drill.py" "file://$T/store" db --identity "$T/key"
out=$("$PYTHON" "$EX/restore_drill.py" "file://$T/store" db 2>&1)
check "restore_drill.py fails without the identity, saying why" \
	"$(echo "$out" | grep -q '^drill failed: NoKey'; echo $?)"
fails "restore_drill.py fails when the newest backup is too old" \
	"$PYTHON" "$EX/restore_drill.py" "file://$T/store" db --identity "$T/key" \
	--max-age-hours -1
obj=$(find "$T/store/db" -name 'data*' | head -1)
printf 'X' | dd of="$obj" bs=1 seek=5000 conv=notrunc 2>/dev/null
out=$("$PYTHON" "$EX/restore_drill.py" "file://$T/store" db --identity "$T/key" 2>&1)
check "restore_drill.py fails on a tampered backup with an integrity error" \
	"$(echo "$out" | grep -q '^drill failed: IntegrityError'; echo $?)"
ok "custom_backend.py backs up and restores through dirjson://" \
	"$PYTHON" "$EX/custom_backend.py" "$T/dirjson"
check "dirjson:// holds the objects and their index" \
	"$([ -f "$T/dirjson/index.json" ] && [ "$(ls "$T/dirjson" | wc -l)" -ge 3 ]; echo $?)"
done_testing
