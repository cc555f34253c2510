"""Storage and Catalog on the real S3 server the suite starts (radosgw, tests/env/s3-local.sh).

BOP_TEST_S3_ENDPOINT, BOP_TEST_S3_BUCKET and the AWS_* keys come from the environment, as
for the other S3 tests; without them (or when the server does not answer) every test here
is skipped with the reason. Each test works under its own prefix of the bucket, removed
afterwards. Stored objects are fetched with curl (SigV4), not through the library, and the
real age and zstd read them."""
import hashlib
import os
import shutil
import subprocess
import time
import uuid

import pytest

import backupop

EP = os.environ.get("BOP_TEST_S3_ENDPOINT", "")
BUCKET = os.environ.get("BOP_TEST_S3_BUCKET", "backupop-test")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CLI = os.path.join(os.environ.get("BOP_BUILD_ROOT", ""), "runner", "cli", "backupop")


def _why_not():
    if not EP:
        return ("no S3 server: BOP_TEST_S3_ENDPOINT is not set "
                "(tests/run starts radosgw with tests/env/s3-local.sh)")
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        return "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def url(prefix, extra=""):
    return "s3://%s/%s?endpoint=%s&path_style=true%s" % (BUCKET, prefix, EP, extra)


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip("%s is not installed" % t)


def s3_get(key):
    """The object KEY of the bucket as the server holds it, fetched by curl (the keys go
    to curl on stdin, never in its arguments)."""
    need("curl")
    cfg = 'user = "%s:%s"\n' % (os.environ["AWS_ACCESS_KEY_ID"],
                                os.environ["AWS_SECRET_ACCESS_KEY"])
    r = subprocess.run(["curl", "-sS", "--fail", "-K", "-",
                        "--aws-sigv4", "aws:amz:%s:s3" % REGION,
                        "-H", "x-amz-content-sha256: " + EMPTY_SHA256,
                        "%s/%s/%s" % (EP, BUCKET, key)],
                       input=cfg.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, "curl GET %s: %s" % (key, r.stderr.decode(errors="replace"))
    return r.stdout


@pytest.fixture
def prefix():
    """A prefix of its own in the bucket; everything under it is removed afterwards."""
    p = "bop-test/python-%s-%d-%s" % (time.strftime("%Y%m%dT%H%M%S"), os.getpid(),
                                      uuid.uuid4().hex[:8])
    try:
        with backupop.Storage.open(url(p)) as s:
            list(s.list())
    except (backupop.IOFailure, backupop.ConnectError, backupop.Timeout) as e:
        pytest.skip("S3 server %s does not answer for bucket %s: %s" % (EP, BUCKET, e))
    yield p
    with backupop.Storage.open(url(p)) as s:
        s.remove_many([k for k, _ in s.list()])


def text_and_noise(n_text, n_noise):
    lines = b"".join(b"INSERT INTO t VALUES (%d, 'row-%d');\n" % (i, i * 7919 % 100003)
                     for i in range(n_text // 24 + 1))
    return lines[:n_text] + os.urandom(n_noise)


def test_storage_put_get_stat_list_remove_on_s3(prefix):
    data = os.urandom(12 << 20)             # three parts of 5 MiB: a multipart upload
    with backupop.Storage.open(url(prefix, "&part_size=5MiB")) as s:
        s.put("small/a", b"hello s3")
        with s.put("big/b") as w:
            for i in range(0, len(data), 1 << 20):
                w.write(data[i:i + (1 << 20)])
        assert s.read("small/a") == b"hello s3"
        assert s.stat("big/b").size == len(data)
        with s.get("big/b", offset=(5 << 20) + 7) as r:        # a ranged GET
            assert r.read() == data[(5 << 20) + 7:]
        assert [k for k, _ in s.list("big/")] == ["big/b"]
        assert sorted((k, st.size) for k, st in s.list()) == [("big/b", len(data)),
                                                             ("small/a", 8)]
        # The server holds exactly what was written.
        assert hashlib.sha256(s3_get(prefix + "/big/b")).digest() == \
            hashlib.sha256(data).digest()
        with pytest.raises(RuntimeError):
            with s.put("aborted") as w:
                w.write(b"x" * (6 << 20))
                raise RuntimeError("stop")
        assert not s.exists("aborted")
        s.remove("small/a")
        with pytest.raises(backupop.NotFound):
            s.get("small/a")
        s.remove_many(["big/b", "not/there"])
        assert list(s.list()) == []


def test_catalog_on_s3_age_and_zstd_read_what_python_wrote(prefix, tmp_path):
    need("age", "zstd")
    data = text_and_noise(7 << 20, 2 << 20)
    pair = backupop.keygen()
    key = tmp_path / "key.txt"
    key.write_text(pair.identity)
    key.chmod(0o600)
    with backupop.Storage.open(url(prefix, "&part_size=5MiB")) as s, \
            backupop.Catalog(s, "db") as cat:
        chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))
        m = cat.backup(chunks, recipients=[pair.recipient], tags=["s3", "py"])
        assert m.plain_bytes == len(data)
        assert m.plain_sha256 == hashlib.sha256(data).hexdigest()
        assert m.object_key.endswith("data.zst.age") and m.tags == ("s3", "py")
        assert [b.id for b in cat.list()] == [m.id]
        assert cat.get("latest") == m
        assert cat.verify(m.id, identities=[pair.identity]).id == m.id
        assert cat.restore(m.id, identities=[pair.identity]) == data
        out = tmp_path / "restored"
        cat.restore("latest", to=out, identities=[pair.identity])
        assert out.read_bytes() == data
        with pytest.raises(backupop.NoKey):
            cat.restore(m.id, identities=[backupop.keygen().identity])
        plan = cat.prune(backupop.RetentionPolicy(keep_last=1))
        assert plan.kept == [m.id] and plan.deleted == []

    stored = s3_get("%s/%s" % (prefix, m.object_key))
    assert hashlib.sha256(stored).hexdigest() == m.stored_sha256
    assert b"row-7919" not in stored
    (tmp_path / "stored").write_bytes(stored)
    age = subprocess.Popen(["age", "-d", "-i", str(key), str(tmp_path / "stored")],
                           stdout=subprocess.PIPE)
    plain = subprocess.run(["zstd", "-d", "-c"], stdin=age.stdout, stdout=subprocess.PIPE,
                           check=True).stdout
    age.stdout.close()
    assert age.wait() == 0
    assert plain == data


def test_cli_and_python_read_each_others_backups_on_s3(prefix, tmp_path):
    if not os.access(CLI, os.X_OK):
        pytest.skip("the backupop executable was not built (%s)" % CLI)
    need("age-keygen")
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, stderr=subprocess.DEVNULL)
    identity = key.read_text()
    recipient = backupop.identity_to_recipient(identity.strip().splitlines()[-1])
    by_cli = os.urandom(3 << 20)
    (tmp_path / "by-cli").write_bytes(by_cli)
    r = subprocess.run([CLI, "-q", "backup", "--storage", url(prefix), "--name", "mixed",
                        "--recipient", recipient, "--tag", "cli", "-i",
                        str(tmp_path / "by-cli")], stdout=subprocess.PIPE)
    assert r.returncode == 0
    cli_id = r.stdout.decode().strip()
    by_py = text_and_noise(2 << 20, 1 << 20)
    with backupop.Catalog(url(prefix), "mixed") as cat:
        assert [(b.id, b.tags) for b in cat.list()] == [(cli_id, ("cli",))]
        assert cat.restore(cli_id, identities=[identity]) == by_cli
        py_id = cat.backup(by_py, recipients=[recipient], compression="gzip").id
    out = tmp_path / "by-py"
    r = subprocess.run([CLI, "-q", "restore", "--storage", url(prefix), "--name", "mixed",
                        "--identity", str(key), py_id, "-o", str(out)])
    assert r.returncode == 0
    assert out.read_bytes() == by_py


def test_wrong_secret_is_an_auth_error_without_the_secret(prefix, tmp_path):
    secret = "wrong-secret-%s" % uuid.uuid4().hex
    (tmp_path / "ak").write_text(os.environ["AWS_ACCESS_KEY_ID"])
    (tmp_path / "sk").write_text(secret)
    settings = {"access_key_file": str(tmp_path / "ak"), "secret_key_file": str(tmp_path / "sk")}
    with pytest.raises(backupop.AuthError) as e:
        with backupop.Storage.open(url(prefix), settings) as s, \
                backupop.Catalog(s, "db") as cat:
            cat.backup(b"x" * 100000, compression="none")
    assert secret not in str(e.value)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(e.value)
    with backupop.Storage.open(url(prefix)) as s:
        assert list(s.list()) == [], "a refused backup stored something"


def test_no_server_is_an_os_error_saying_it_cannot_connect():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    u = "s3://%s/p?endpoint=http://127.0.0.1:%d&path_style=true" % (BUCKET, port)
    # After its retries (about 4 s).
    with pytest.raises(backupop.ConnectError) as e:
        with backupop.Storage.open(u) as s:
            s.put("k", b"v")
    assert isinstance(e.value, OSError)
    assert "cannot connect to http://127.0.0.1:%d" % port in str(e.value)
