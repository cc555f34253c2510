#!/bin/bash
# The cockroach engine through the real backupop-runner and its API. CockroachDB cannot be
# installed here, so its SQL client is a script that plays the database: it reads the
# BACKUP/RESTORE statement on stdin and drives the runner's endpoint with curl the way
# CockroachDB's http:// external storage (pkg/cloud/httpsink) does: PUT of each whole file
# (streamed, chunked), GET with "Range: bytes=N-" expecting 206 and Content-Range, HEAD
# for the size, DELETE, 404 for a missing file; LATEST at the root of the collection.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"
for tool in age age-keygen zstd; do
	command -v $tool >/dev/null || skip_all "$tool is not installed (Debian: age, zstd)"
done

PW='pw-Zq81-sekrit'
SUB=2026/01/02-030405.00
PORT=$(python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py")
mkdir -p "$T/orig/data"
head -c $((10 << 20)) /dev/urandom >"$T/orig/data/1.sst"
: >"$T/orig/data/empty.sst"
printf 'x' >"$T/orig/data/one"
head -c 100000 /dev/urandom >"$T/orig/metadata.sst"
head -c 3000 /dev/urandom >"$T/orig/BACKUP-CHECKPOINT-tmp"
age-keygen -o "$T/key.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$T/key.txt")

# ---- the fake CockroachDB SQL client ------------------------------------------------------
cat >"$T/fake-cockroach" <<EOF
#!/bin/bash
T='$T'; SUB='$SUB'; PW='$PW'
EOF
cat >>"$T/fake-cockroach" <<'EOF'
R="$T/results"; O="$T/orig"; bad=0
stmt=$(cat)
mode=$(cat "$T/mode" 2>/dev/null)
pass() { echo "PASS $1" >>"$R"; }
chk() { local n=$1; shift; if "$@" >/dev/null 2>&1; then pass "$n"; else echo "FAIL $n" >>"$R"; bad=1; fi; }
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# PUT as Go's http client sends a pipe: chunked, no Content-Length.
put() { code -T "$O/$1" -H 'Transfer-Encoding: chunked' "$url/$2"; }
head_len() { curl -sI "$url/$1" | tr -d '\r' | sed -n 's/^Content-Length: //Ip'; }
chk "no password in the client's arguments" bash -c "! tr '\0' ' ' </proc/$$/cmdline | grep -qF -- '$PW'"
chk "the password arrives in PGPASSWORD" test "$PGPASSWORD" = "$PW"
chk "... and in COCKROACH_URL" bash -c "[[ \"\$COCKROACH_URL\" == *':$PW@'* ]]"
# ranged GET: NAME OFFSET; checks 206, Content-Range and the bytes
ranged() {
	local size; size=$(stat -c %s "$O/$1")
	curl -s -D "$T/hdr" -o "$T/got" -H "Range: bytes=$2-" "$url/$3" || return 1
	tr -d '\r' <"$T/hdr" | grep -q "^HTTP/1.1 206" || return 1
	tr -d '\r' <"$T/hdr" | grep -qi "^Content-Range: bytes $2-$((size - 1))/$size$" || return 1
	tail -c +$(($2 + 1)) "$O/$1" | cmp -s - "$T/got"
}
whole() { curl -sf -o "$T/got" "$url/$2" && cmp -s "$O/$1" "$T/got"; }
case "$stmt" in
BACKUP*)
	url=$(sed -n "s/.* INTO '\([^']*\)'.*/\1/p" <<<"$stmt")
	echo "$url" >"$T/backup-url"
	chk "BACKUP DATABASE \"shop\" ... WITH revision_history" grep -q '^BACKUP DATABASE "shop" INTO .* WITH revision_history;$' <<<"$stmt"
	chk "GET of a BACKUP_MANIFEST not yet written: 404" test "$(code "$url/$SUB/BACKUP_MANIFEST")" = 404
	chk "PUT data/1.sst (10 MiB, chunked): 201" test "$(put data/1.sst "$SUB/data/1.sst")" = 201
	# curl sends no last chunk for an empty file: send Go's "0\r\n\r\n" by hand.
	chk "PUT data/empty.sst (0 bytes, chunked): 201" python3 - "$url/$SUB/data/empty.sst" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.create_connection((u.hostname, u.port))
s.sendall(b"PUT " + u.path.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
assert s.recv(1000).startswith(b"HTTP/1.1 201"), "no 201"
PY
	[ "$mode" = fail ] && exit 1
	chk "PUT data/one (1 byte, Content-Length): 201" test "$(code -T "$O/data/one" "$url/$SUB/data/one")" = 201
	chk "PUT metadata.sst: 201" test "$(put metadata.sst "$SUB/metadata.sst")" = 201
	chk "PUT a checkpoint: 201" test "$(put BACKUP-CHECKPOINT-tmp "$SUB/progress/BACKUP-CHECKPOINT-tmp")" = 201
	chk "HEAD data/1.sst: Content-Length 10485760" test "$(head_len "$SUB/data/1.sst")" = 10485760
	chk "HEAD data/empty.sst: Content-Length 0" test "$(head_len "$SUB/data/empty.sst")" = 0
	chk "HEAD of a missing file: 404" test "$(code -I "$url/$SUB/nope")" = 404
	chk "GET data/1.sst whole: 200, same bytes" whole data/1.sst "$SUB/data/1.sst"
	chk "GET data/1.sst from byte 0 with a Range" ranged data/1.sst 0 "$SUB/data/1.sst"
	chk "GET data/1.sst from the middle: 206, Content-Range, same bytes" ranged data/1.sst 5000001 "$SUB/data/1.sst"
	chk "GET data/1.sst from its last byte" ranged data/1.sst 10485759 "$SUB/data/1.sst"
	chk "GET past the end: 416" test "$(code -H 'Range: bytes=10485760-' "$url/$SUB/data/1.sst")" = 416
	chk "GET data/one whole" whole data/one "$SUB/data/one"
	chk "GET data/empty.sst whole" whole data/empty.sst "$SUB/data/empty.sst"
	chk "DELETE the checkpoint: 204" test "$(code -X DELETE "$url/$SUB/progress/BACKUP-CHECKPOINT-tmp")" = 204
	chk "... then GET: 404" test "$(code "$url/$SUB/progress/BACKUP-CHECKPOINT-tmp")" = 404
	chk "PUT with a '..' path: 400" test "$(code --path-as-is -T "$O/data/one" "$url/$SUB/../../x")" = 400
	printf '/%s' "$SUB" >"$T/latest"
	chk "PUT LATEST: 201" test "$(code -T "$T/latest" "$url/LATEST")" = 201
	;;
RESTORE*)
	url=$(sed -n "s/.* IN '\([^']*\)'.*/\1/p" <<<"$stmt")
	chk "RESTORE DATABASE \"shop\" FROM LATEST IN ... WITH new_db_name" grep -q "^RESTORE DATABASE \"shop\" FROM LATEST IN '.*' WITH new_db_name = 'shop_restored';$" <<<"$stmt"
	if [ "$mode" = tampered ]; then
		# Bytes before the damage may flow, but the response is cut short: a reader never
		# gets the whole file as if it were good (Go's client sees "unexpected EOF").
		chk "a large tampered file is cut short (curl fails, fewer bytes)" bash -c \
			"! curl -s -o '$T/got' '$url/$SUB/data/1.sst' && test \$(stat -c %s '$T/got') -lt 10485760"
		c=$(code "$url/$SUB/data/one")
		chk "a small tampered file is refused with 500 (got $c)" test "$c" = 500
		exit 1
	fi
	chk "restore: GET metadata/latest/LATEST: 404" test "$(code "$url/metadata/latest/LATEST")" = 404
	chk "restore: GET LATEST gives the backup's directory" test "$(curl -sf "$url/LATEST")" = "/$SUB"
	for f in data/1.sst data/empty.sst data/one metadata.sst; do
		chk "restore: GET $f, same bytes" whole "$f" "$SUB/$f"
	done
	chk "restore: ranged GET of data/1.sst" ranged data/1.sst 7777777 "$SUB/data/1.sst"
	chk "restore: ranged GET of metadata.sst" ranged metadata.sst 99999 "$SUB/metadata.sst"
	chk "restore: the deleted checkpoint is not there" test "$(code "$url/$SUB/progress/BACKUP-CHECKPOINT-tmp")" = 404
	chk "restore: PUT is refused: 403" test "$(code -T "$O/data/one" "$url/$SUB/new")" = 403
	chk "restore: DELETE is refused: 403" test "$(code -X DELETE "$url/LATEST")" = 403
	;;
*)	echo "FAIL unexpected statement: $stmt" >>"$R"; exit 1 ;;
esac
exit $bad
EOF
chmod +x "$T/fake-cockroach"

# results NAME-PREFIX: turns the client's PASS/FAIL lines into TAP lines, then clears them.
results() {
	while read -r verdict name; do
		check "client: $name" "$([ "$verdict" = PASS ] && echo 0 || echo 1)"
	done <"$T/results"
	: >"$T/results"
}
: >"$T/results"

cat >"$T/crdb.yaml" <<YAML
name: crdb
storage: {url: 'file://$T/store'}
engine:
  cockroach:
    host: crdb.db
    database: shop
    user: backup
    password: '$PW'
    client: ['$T/fake-cockroach']
    backupOptions: [revision_history]
    restore: {newDatabaseName: shop_restored}
    timeoutSeconds: 120
compression: {algorithm: zstd}
encryption: {recipients: ['$RECIPIENT'], identityFile: '$T/key.txt'}
api: {listen: '127.0.0.1:$PORT', tokenFile: token, advertiseURL: 'http://127.0.0.1:$PORT/'}
YAML

# ---- the config needs api.advertiseURL -------------------------------------------------------
grep -v advertiseURL "$T/crdb.yaml" >"$T/noadv.yaml"
echo "api: {listen: '127.0.0.1:0', tokenFile: token}" >>"$T/noadv.yaml"
"$RUNNER" --config "$T/noadv.yaml" --state-dir "$T/noadv.state" >"$T/noadv.log" 2>&1
check "without api.advertiseURL the cockroach config is refused (exit 2)" "$([ $? = 2 ] && echo 0 || echo 1)"
ok "... and the message names api.advertiseURL" grep -q "api.advertiseURL" "$T/noadv.log"

start crdb "$T/crdb.yaml"
ok "the runner starts" test "$PORT" -gt 0

post() { api -X POST "$URL/v1/$1" | jq_py 'print(d["id"])'; }
stored_objects() { find "$T/store/crdb" -type f ! -path '*/runs/*' ! -name lock.json | wc -l; }

# ---- backup ---------------------------------------------------------------------------
id=$(post backups)
ok "a backup run is accepted" test -n "$id"
ok "... and succeeds" wait_phase "$id" Succeeded
results
manifests=$(find "$T/store/crdb" -name manifest.json)
ok "one manifest" test "$(echo "$manifests" | grep -c manifest.json)" = 1
M=$(echo "$manifests" | head -1)
ok "the manifest lists exactly the files CockroachDB kept" python3 - "$M" "$SUB" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); sub = sys.argv[2]
names = sorted(f["name"] for f in m["files"])
want = sorted(["LATEST", sub + "/data/1.sst", sub + "/data/empty.sst", sub + "/data/one", sub + "/metadata.sst"])
assert names == want, names
assert m["engine"] == "cockroach" and m["encryption"]["type"] == "x25519"
assert m["compression"]["algorithm"] == "zstd"
assert m["plain"]["bytes"] == 10485760 + 1 + 100000 + len("/" + sub)
PY
obj() { python3 -c "import json,sys; print([f['object'] for f in json.load(open('$M'))['files'] if f['name']==sys.argv[1]][0])" "$1"; }
ok "the stored big file is age-encrypted zstd of the original (age -d | zstd -d)" \
	bash -c "age -d -i '$T/key.txt' '$T/store/$(obj "$SUB/data/1.sst")' | zstd -dq | cmp -s - '$T/orig/data/1.sst'"
ok "... as is the 1-byte file" \
	bash -c "age -d -i '$T/key.txt' '$T/store/$(obj "$SUB/data/one")' | zstd -dq | cmp -s - '$T/orig/data/one'"
fails "the stored object is not the plaintext" cmp -s "$T/store/$(obj "$SUB/metadata.sst")" "$T/orig/metadata.sst"
n_objects=$(stored_objects)
ok "5 data objects and a manifest are stored (got $n_objects)" test "$n_objects" = 6

# ---- the token is valid only during the run ----------------------------------------------
old=$(cat "$T/backup-url")
c=$(curl -s -o /dev/null -w '%{http_code}' -T "$T/orig/data/one" "$old/after")
ok "PUT with the ended run's token: 404 (got $c)" test "$c" = 404
c=$(curl -s -o /dev/null -w '%{http_code}' -T "$T/orig/data/one" "$URL/v1/cockroach/0000wrong/x")
ok "PUT with a wrong token: 404 (got $c)" test "$c" = 404
c=$(curl -s -o /dev/null -w '%{http_code}' "$old/LATEST")
ok "GET with the ended run's token: 404 (got $c)" test "$c" = 404
ok "nothing was stored by them" test "$(stored_objects)" = "$n_objects"

# ---- restore ------------------------------------------------------------------------------
id=$(post restores)
ok "a restore run is accepted" test -n "$id"
ok "... and succeeds" wait_phase "$id" Succeeded
results

# ---- a backup whose statement fails ---------------------------------------------------------
echo fail >"$T/mode"
id=$(post backups)
ok "a failing backup" wait_phase "$id" Failed
results
ok "... leaves no second manifest" test "$(find "$T/store/crdb" -name manifest.json | wc -l)" = 1
ok "... and none of its objects" test "$(stored_objects)" = "$n_objects"
ok "... and says why" grep -q "BACKUP statement failed" "$T/run.json"

# ---- a tampered object is never served --------------------------------------------------------
python3 - "$T/store/$(obj "$SUB/data/1.sst")" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)
PY
python3 - "$T/store/$(obj "$SUB/data/one")" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-5] ^= 1; open(p, "wb").write(b)
PY
echo tampered >"$T/mode"
id=$(post restores)
ok "a restore from a tampered backup fails" wait_phase "$id" Failed
results
ok "the runner logged the integrity failure" grep -q "does not match" "$T/crdb.log"

# ---- secrets ----------------------------------------------------------------------------
fails "the password is not in the runner's log" grep -qF "$PW" "$T/crdb.log"
ok "... nor in the run records" bash -c "! grep -rqF '$PW' '$T/store/crdb/runs'"
done_testing
