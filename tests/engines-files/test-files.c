/*
 * The "files" engine: a tree with every kind of entry goes through bop_engine_backup,
 * bop_catalog_backup (file://, zstd + age), bop_catalog_restore and bop_engine_restore and
 * comes back equal (content hashes, modes, mtimes, owners, symlink targets, hardlinks);
 * GNU tar reads the stream; hostile archives are refused without anything escaping; an
 * aborted or corrupted restore leaves the target as it was and no staging directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

static char *tmp;

static char *xasprintf(const char *fmt, ...) BOP_PRINTF(1, 2);

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		exit(2);
	va_end(ap);
	return s;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || fchmod(fd, mode) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };

	utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static int run(const char *fmt, ...) BOP_PRINTF(1, 2);

static int run(const char *fmt, ...)
{
	va_list ap;
	char *cmd = NULL;
	int status;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		exit(2);
	va_end(ap);
	status = system(cmd);
	free(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have(const char *tool)
{
	return run("command -v %s >/dev/null 2>&1", tool) == 0;
}

/* ---- the tree ---- */

#define SPARSE_HOLE (1024 * 1024)
#define SPARSE_SIZE (3 * 1024 * 1024)

/* A POSIX ACL as Linux stores it in system.posix_acl_*: version 2, then (tag, permissions,
 * id) for the owner rw-, user 4321 r--, the group r--, the mask r-- and others r--. */
static const unsigned char acl_xattr[] = {
	2, 0, 0, 0,
	0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
	0x02, 0, 4, 0, 0xe1, 0x10, 0, 0,
	0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
	0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
	0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
};
static const char attr_value[] = "kept\0binary\001";   /* a user attribute, with a NUL */
static bool have_attrs;         /* the file system of the tree took the attributes */

static const char *const utf8_name = "\xc3\xa9t\xc3\xa9 \xe2\x98\x83.txt";  /* "été ☃.txt" */
static const char *const latin1_name = "\xe9t\xe9.latin1";  /* not UTF-8 */

static void make_tree(const char *root)
{
	char *p;
	size_t big = 3 * 1024 * 1024 + 123;
	unsigned char *data = malloc(big);

	for (size_t i = 0; i < big; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	mkdir(root, 0755);
#define AT(name) (free(p), p = xasprintf("%s/%s", root, name))
	p = NULL;
	AT("big.bin");
	write_file(p, data, big, 0644);
	AT("empty");
	write_file(p, "", 0, 0600);
	AT("with space and\nnewline");
	write_file(p, "odd name\n", 9, 0640);
	AT(utf8_name);
	write_file(p, "unicode\n", 8, 0444);
	AT(latin1_name);
	write_file(p, "latin-1\n", 8, 0644);
	AT("sub-\xe9");
	ok(symlink("\xe9t\xe9.latin1", p) == 0, "fixture: a symlink to a name that is not UTF-8");
	AT("exec.sh");
	write_file(p, "#!/bin/sh\n", 10, 0755);
	AT("sparse.img");                   /* a hole, 4 KiB of data, a hole at the end */
	{
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		ok(fd >= 0 && pwrite(fd, data, 4096, SPARSE_HOLE) == 4096 &&
			ftruncate(fd, SPARSE_SIZE) == 0 && close(fd) == 0, "fixture: a sparse file");
	}
	AT("sub");
	mkdir(p, 0750);
	AT("sub/deeper");
	mkdir(p, 0700);
	AT("sub/deeper/leaf.txt");
	write_file(p, "leaf\n", 5, 0600);
	AT("sub/link-to-leaf");
	ok(symlink("deeper/leaf.txt", p) == 0, "fixture: a symlink");
	AT("dangling");
	ok(symlink("/nonexistent/target", p) == 0, "fixture: a dangling symlink");
	AT("hard1");
	write_file(p, "shared inode\n", 13, 0644);
	{
		char *h2 = xasprintf("%s/sub/hard2", root);

		ok(link(p, h2) == 0, "fixture: a hard link");
		free(h2);
	}
	AT("owned");
	write_file(p, "owned\n", 6, 0644);
	if (geteuid() == 0 && lchown(p, 1234, 5678) < 0)
		perror("lchown");
	AT("scratch.tmp");
	write_file(p, "temporary\n", 10, 0644);
	AT("cache");
	mkdir(p, 0755);
	AT("cache/junk");
	write_file(p, "junk\n", 5, 0644);
	AT("sub/cache");                    /* a file, not a directory: "cache/" keeps it */
	write_file(p, "not a dir\n", 10, 0644);
	/* Extended attributes and ACLs: a file with a user attribute and an access ACL, a
	 * directory with a default ACL. */
	AT("attrs.txt");
	write_file(p, "attributes\n", 11, 0644);
	have_attrs = setxattr(p, "user.backupop", attr_value, sizeof(attr_value), 0) == 0 &&
		setxattr(p, "system.posix_acl_access", acl_xattr, sizeof(acl_xattr), 0) == 0;
	AT("acl-dir");
	mkdir(p, 0755);
	have_attrs = have_attrs &&
		setxattr(p, "system.posix_acl_default", acl_xattr, sizeof(acl_xattr), 0) == 0;
	AT("sub/deeper/leaf.txt");
	set_mtime(p, 1000000000, 123456789);
	AT("big.bin");
	set_mtime(p, 1600000000, 5);
	AT("sub/link-to-leaf");
	set_mtime(p, 1500000000, 0);
	AT("sub/deeper");
	set_mtime(p, 1400000000, 999);
	AT("sub");
	set_mtime(p, 1300000000, 0);
#undef AT
	free(p);
	free(data);
}

/* ---- comparing trees ---- */

static void sha256_file(const char *path, char hex[65])
{
	unsigned char buf[65536], md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int fd = open(path, O_RDONLY);
	ssize_t n;

	strcpy(hex, "unreadable");
	if (fd < 0)
		goto out;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	bop__hex(hex, md, 32);
	close(fd);
out:
	EVP_MD_CTX_free(ctx);
}

static const char *cmp_root_a, *cmp_root_b;
static int cmp_entries, cmp_diffs;
static const char *const *cmp_skip;
static bool cmp_dir_mtimes = true;

static bool skipped(const char *rel)
{
	for (const char *const *s = cmp_skip; s && *s; s++)
		if (!strncmp(rel, *s, strlen(*s)))
			return true;
	return false;
}

static void differ(const char *rel, const char *what)
{
	if (cmp_diffs++ < 10)
		diag("%s differs: %s", rel, what);
}

static void compare_entry(const char *rel, const struct stat *a, const char *pb)
{
	struct stat b;
	char ha[65], hb[65], la[4096] = "", lb[4096] = "";
	char *pa = xasprintf("%s/%s", cmp_root_a, rel);

	if (lstat(pb, &b) < 0) {
		differ(rel, "missing");
		goto out;
	}
	if ((a->st_mode & S_IFMT) != (b.st_mode & S_IFMT))
		differ(rel, "type");
	if (!S_ISLNK(a->st_mode) && (a->st_mode & 07777) != (b.st_mode & 07777))
		differ(rel, "mode");
	if (a->st_uid != b.st_uid || a->st_gid != b.st_gid)
		differ(rel, "owner");
	if (!S_ISDIR(a->st_mode) && (a->st_mtim.tv_sec != b.st_mtim.tv_sec ||
			a->st_mtim.tv_nsec != b.st_mtim.tv_nsec))
		differ(rel, "mtime");
	if (S_ISDIR(a->st_mode) && cmp_dir_mtimes && strcmp(rel, ".") && a->st_mtim.tv_sec != b.st_mtim.tv_sec)
		differ(rel, "directory mtime");
	if (S_ISREG(a->st_mode)) {
		sha256_file(pa, ha);
		sha256_file(pb, hb);
		if (strcmp(ha, hb) || a->st_size != b.st_size)
			differ(rel, "content");
		if (a->st_nlink != b.st_nlink)
			differ(rel, "link count");
	}
	if (S_ISLNK(a->st_mode)) {
		if (readlink(pa, la, sizeof(la) - 1) < 0 || readlink(pb, lb, sizeof(lb) - 1) < 0 ||
				strcmp(la, lb))
			differ(rel, "symlink target");
	}
out:
	free(pa);
}

static int compare_walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *rel = path[strlen(cmp_root_a)] ? path + strlen(cmp_root_a) + 1 : ".";
	char *pb;

	BOP_UNUSED(flag);
	BOP_UNUSED(ftw);
	if (skipped(rel))
		return 0;
	cmp_entries++;
	pb = xasprintf("%s/%s", cmp_root_b, rel);
	compare_entry(rel, st, pb);
	free(pb);
	return 0;
}

static int count_walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	BOP_UNUSED(path);
	BOP_UNUSED(st);
	BOP_UNUSED(flag);
	BOP_UNUSED(ftw);
	cmp_entries++;
	return 0;
}

static int count_tree(const char *root)
{
	cmp_entries = 0;
	nftw(root, count_walk, 16, FTW_PHYS);
	return cmp_entries;
}

/* Differences between trees a and b, ignoring entries of a below `skip` prefixes; b must
 * have no more entries than a has outside them. */
/* Whether attribute `attr` of `rel` is the same, and there, below `a` and `b`. */
static bool same_attr(const char *a, const char *b, const char *rel, const char *attr)
{
	char *pa = xasprintf("%s/%s", a, rel), *pb = xasprintf("%s/%s", b, rel);
	char va[256], vb[256];
	ssize_t na = lgetxattr(pa, attr, va, sizeof(va)), nb = lgetxattr(pb, attr, vb, sizeof(vb));

	if (na <= 0 || na != nb || memcmp(va, vb, (size_t)na))
		diag("%s of %s: %zd bytes in the source, %zd restored", attr, rel, na, nb);
	free(pa);
	free(pb);
	return na > 0 && na == nb && !memcmp(va, vb, (size_t)na);
}

static int compare_trees(const char *a, const char *b, const char *const *skip)
{
	int in_a, in_b;

	cmp_root_a = a;
	cmp_root_b = b;
	cmp_skip = skip;
	cmp_entries = cmp_diffs = 0;
	nftw(a, compare_walk, 16, FTW_PHYS);
	in_a = cmp_entries;
	in_b = count_tree(b);
	if (in_a != in_b) {
		diag("%d entries in %s, %d in %s", in_a, a, in_b, b);
		cmp_diffs++;
	}
	return cmp_diffs;
}

/* Entries in `dir` whose name contains ".restore-". */
static int staging_dirs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (strstr(e->d_name, ".restore-"))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void remove_tree(const char *path)
{
	run("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);
}

/* ---- catalog ---- */

typedef struct env {
	char *store;
	bop_storage_t *storage;
	bop_keys_t *keys;
} env_t;

static int env_init(env_t *c)
{
	char *identity = NULL, *recipient = NULL, *url, *idfile;
	int ret;

	c->store = xasprintf("%s/store", tmp);
	url = xasprintf("file://%s", c->store);
	idfile = xasprintf("%s/identity.txt", tmp);
	ret = bop_storage_open(&c->storage, url, NULL);
	if (ret == 0)
		ret = bop_age_keygen(&identity, &recipient);
	if (ret == 0) {
		write_file(idfile, identity, strlen(identity), 0600);
		ret = bop_keys_new(&c->keys);
	}
	if (ret == 0)
		ret = bop_keys_add_identity_file(c->keys, idfile);
	if (ret < 0)
		diag("cannot set up the catalog: %s", bop_error_last());
	bop_free(identity);
	bop_free(recipient);
	free(idfile);
	free(url);
	return ret;
}

static void env_free(env_t *c)
{
	bop_keys_free(c->keys);
	bop_storage_free(c->storage);
	free(c->store);
}

static int backup(env_t *c, const char *config, bop_manifest_t **m)
{
	bop_backup_options_t opts;
	bop_catalog_t *cat = NULL;
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	int ret;

	bop_backup_options_init(&opts, BOP_BACKUP_OPTIONS_VERSION);
	opts.compression = BOP_COMPRESSION_ZSTD;
	opts.keys = c->keys;
	opts.engine = "files";
	ret = bop_engine_open(&e, "files", config);
	if (ret == 0)
		ret = bop_engine_backup(e, &src);
	if (ret == 0)
		ret = bop_catalog_open(&cat, c->storage, "files");
	if (ret == 0)
		ret = bop_catalog_backup(cat, m, src, &opts);
	else
		bop_source_free(src);
	bop_catalog_free(cat);
	bop_engine_free(e);
	return ret;
}

static int restore_to(env_t *c, const bop_manifest_t *m, bop_sink_t *sink)
{
	bop_restore_options_t opts;
	bop_catalog_t *cat = NULL;
	int ret;

	bop_restore_options_init(&opts, BOP_RESTORE_OPTIONS_VERSION);
	opts.keys = c->keys;
	ret = bop_catalog_open(&cat, c->storage, "files");
	if (ret == 0)
		ret = bop_catalog_restore(cat, m, sink, &opts);
	else
		bop_sink_free(sink);
	bop_catalog_free(cat);
	return ret;
}

static int restore(env_t *c, const char *config, const bop_manifest_t *m)
{
	bop_engine_t *e = NULL;
	bop_sink_t *sink = NULL;
	int ret;

	ret = bop_engine_open(&e, "files", config);
	if (ret == 0)
		ret = bop_engine_restore(e, &sink);
	if (ret == 0)
		ret = restore_to(c, m, sink);
	bop_engine_free(e);
	return ret;
}

/* Feeds the bytes of file `path` to a files restore with `config`; commits unless
 * `abort_after` >= 0, in which case it aborts after that many bytes. */
static int restore_raw(const char *config, const char *path, long abort_after)
{
	bop_engine_t *e = NULL;
	bop_sink_t *sink = NULL;
	char buf[7000];
	long total = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY), ret;

	ret = bop_engine_open(&e, "files", config);
	if (ret == 0)
		ret = bop_engine_restore(e, &sink);
	while (ret == 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
		ret = bop_sink_write(sink, buf, (size_t)n);
		total += n;
		if (abort_after >= 0 && total >= abort_after)
			break;
	}
	if (ret == 0 && abort_after >= 0)
		bop_sink_abort(sink);
	else if (ret == 0)
		ret = bop_sink_commit(sink);
	bop_sink_free(sink);
	bop_engine_free(e);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- log capture ---- */

static char log_text[16384];

static void log_cb(bop_log_level_t level, const char *component, const char *message, void *payload)
{
	size_t n = strlen(log_text);

	BOP_UNUSED(payload);
	if (level >= BOP_LOG_WARN)
		snprintf(log_text + n, sizeof(log_text) - n, "[%s] %s\n", component, message);
}

/* ---- the tests ---- */

static void test_config(void)
{
	bop_engine_t *e = NULL;
	char *patch = NULL;
	int ret;

	ret = bop_engine_open(&e, "files", "{}");
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "\"path\""), "a missing path is refused: %s",
		bop_error_last());
	ret = bop_engine_open(&e, "files", "{\"path\": \"/x\", \"colour\": 1}");
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "colour"), "an unknown field is named: %s",
		bop_error_last());
	ret = bop_engine_open(&e, "files", "{\"path\": \"rel\"}");
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "absolute"), "a relative path is refused");
	ret = bop_engine_open(&e, "files", "{\"path\": \"/x\", \"exclude\": [1]}");
	ok(ret == BOP_EINVAL && strstr(bop_error_last(), "exclude"), "a bad exclude is refused");
	ret = bop_engine_open(&e, "files", "{\"path\": \"/nonexistent-dir\"}");
	ok(ret == 0, "a valid config opens");
	ok(bop_engine_validate(e) < 0 && strstr(bop_error_last(), "/nonexistent-dir"),
		"validate names a missing directory: %s", bop_error_last());
	ok(bop_engine_pod_customize(e, &patch) == 0 && patch && !strcmp(patch, "{}"), "pod_customize is {}");
	bop_free(patch);
	bop_engine_free(e);
}

static void test_round_trip(env_t *c)
{
	static const char *const excluded[] = { "scratch.tmp", "cache", NULL };
	char *src = xasprintf("%s/src", tmp), *dst = xasprintf("%s/restored", tmp);
	char *cfg = xasprintf("{\"path\": \"%s/\", \"exclude\": [\"*.tmp\", \"cache/\"], \"restore\": {\"path\": \"%s\"}}",
		src, dst);
	char *other, *plain = xasprintf("%s/plain.tar", tmp), *gnu = xasprintf("%s/gnu", tmp);
	bop_manifest_t *m = NULL;
	bop_sink_t *sink = NULL;
	char *list;
	int ret;

	make_tree(src);
	/* In the C locale of this program: names that are not ASCII must neither warn nor
	 * change. */
	log_text[0] = '\0';
	bop_log_set_callback(log_cb, NULL);
	ret = backup(c, cfg, &m);
	ok(ret == 0, "backup of the tree through the catalog (zstd + age): %s", ret ? bop_error_last() : "ok");
	if (ret) {
		bop_log_set_callback(NULL, NULL);
		skip(14, "no backup");
		goto out;
	}
	ret = restore(c, cfg, m);
	bop_log_set_callback(NULL, NULL);
	ok(ret == 0, "restore into a new directory: %s", ret ? bop_error_last() : "ok");
	ok(!strstr(log_text, "translate") && !strstr(log_text, "convert"),
		"UTF-8 and non-UTF-8 names go through the C locale without warnings: %s",
		log_text[0] ? log_text : "none");
	ok(compare_trees(src, dst, excluded) == 0, "restored tree equals the source (content, modes, mtimes, owners, links)");
	{
		struct stat s1, s2;
		char *h1 = xasprintf("%s/hard1", dst), *h2 = xasprintf("%s/sub/hard2", dst);

		ok(stat(h1, &s1) == 0 && stat(h2, &s2) == 0 && s1.st_ino == s2.st_ino,
			"hardlinks are one inode after restore");
		free(h1);
		free(h2);
	}
	if (have_attrs) {
		ok(same_attr(src, dst, "attrs.txt", "user.backupop") &&
			same_attr(src, dst, "attrs.txt", "system.posix_acl_access"),
			"a file's extended attribute and access ACL come back");
		ok(same_attr(src, dst, "acl-dir", "system.posix_acl_default"),
			"a directory's default ACL comes back");
	} else {
		skip(2, "the file system of %s takes no user attributes or ACLs", tmp);
	}
	{
		struct stat s1, s2 = { 0 };
		char *a = xasprintf("%s/sparse.img", src), *b = xasprintf("%s/sparse.img", dst);

		/* Only where the file system of the source keeps holes. */
		if (stat(a, &s1) == 0 && s1.st_blocks * 512 < SPARSE_SIZE / 2) {
			int r = stat(b, &s2);

			ok(r == 0 && s2.st_size == SPARSE_SIZE && s2.st_blocks * 512 < SPARSE_SIZE / 2,
				"a sparse file comes back sparse (%lld bytes allocated of %lld)",
				(long long)s2.st_blocks * 512, (long long)s2.st_size);
		} else {
			skip(1, "the file system of %s has no holes", tmp);
		}
		free(a);
		free(b);
	}
	other = xasprintf("%s/sub/cache", dst);
	ok(access(other, F_OK) == 0, "\"cache/\" does not exclude a file named cache");
	free(other);
	other = xasprintf("%s/cache", dst);
	ok(access(other, F_OK) != 0, "\"cache/\" excludes the directory cache");
	free(other);
	other = xasprintf("%s/scratch.tmp", dst);
	ok(access(other, F_OK) != 0, "\"*.tmp\" excludes scratch.tmp");
	free(other);
	ok(staging_dirs(tmp) == 0, "no staging directory is left");

	ret = restore(c, cfg, m);
	ok(ret == BOP_EEXISTS && strstr(bop_error_last(), "overwrite"), "an existing target is refused without overwrite: %s",
		bop_error_last());

	/* GNU tar reads the plaintext stream. */
	if (!have("tar")) {
		skip(3, "GNU tar is not installed");
		goto out;
	}
	ret = bop_sink_file_new(&sink, plain);
	if (ret == 0)
		ret = restore_to(c, m, sink);
	ok(ret == 0, "the plaintext stream is saved to a file");
	list = NULL;
	{
		char *cmd = xasprintf("tar -tf '%s' > '%s.list' && tar -xf '%s' -C '%s' --numeric-owner",
			plain, plain, plain, gnu);
		mkdir(gnu, 0755);
		ok(system(cmd) == 0, "GNU tar lists and extracts the stream");
		free(cmd);
		cmd = xasprintf("%s.list", plain);
		bop__read_file(cmd, &list, NULL, 1 << 20);
		free(cmd);
	}
	/* GNU tar does not always restore directory times when hardlinks point into them. */
	cmp_dir_mtimes = false;
	ok(list && strstr(list, "sub/deeper/leaf.txt") && strstr(list, utf8_name) &&
		compare_trees(src, gnu, excluded) == 0, "GNU tar's extraction equals the source (but directory times)");
	cmp_dir_mtimes = true;
	free(list);
out:
	bop_manifest_free(m);
	free(src);
	free(dst);
	free(cfg);
	free(plain);
	free(gnu);
}

/* Restores over an existing target, aborts halfway, and with a corrupted backup. */
static void test_overwrite_and_abort(env_t *c)
{
	char *src = xasprintf("%s/src", tmp), *dst = xasprintf("%s/existing", tmp);
	char *marker = xasprintf("%s/existing/marker", tmp), *plain = xasprintf("%s/plain.tar", tmp);
	char *cfg = xasprintf("{\"path\": \"%s\", \"restore\": {\"path\": \"%s\", \"overwrite\": true}}", src, dst);
	bop_manifest_t *m = NULL;
	char *obj;
	int ret;

	mkdir(dst, 0755);
	write_file(marker, "old\n", 4, 0644);
	ret = restore_raw(cfg, plain, 20000);
	ok(ret == 0 && access(marker, F_OK) == 0, "an aborted restore leaves the target as it was");
	ok(staging_dirs(tmp) == 0, "and removes its staging directory");

	ret = backup(c, cfg, &m);
	ok(ret == 0, "second backup: %s", ret ? bop_error_last() : "ok");
	if (ret) {
		skip(4, "no backup");
		goto out;
	}
	obj = xasprintf("%s/%s", c->store, bop_manifest_object_key(m));
	{
		/* Corrupt the stored object near its end (the holdback withholds the end). */
		struct stat st;
		int fd = open(obj, O_RDWR);
		unsigned char b;

		fstat(fd, &st);
		ok(pread(fd, &b, 1, st.st_size - 100) == 1, "the stored object is read");
		b ^= 0x40;
		ok(pwrite(fd, &b, 1, st.st_size - 100) == 1, "one of its bytes is flipped");
		close(fd);
	}
	ret = restore(c, cfg, m);
	ok(ret < 0 && access(marker, F_OK) == 0, "a corrupted backup fails (%s) and the target is untouched",
		bop_error_last());
	ok(staging_dirs(tmp) == 0, "no staging directory is left after the failure");
	free(obj);
	bop_manifest_free(m);
	m = NULL;

	ret = restore_raw(cfg, plain, -1);
	ok(ret == 0 && access(marker, F_OK) != 0, "overwrite replaces the target: %s", ret ? bop_error_last() : "ok");
	ok(staging_dirs(tmp) == 0, "the old tree is removed");
out:
	bop_manifest_free(m);
	free(src);
	free(dst);
	free(marker);
	free(plain);
	free(cfg);
}

static void test_hostile(void)
{
	char *target = xasprintf("%s/victim/target", tmp), *cfg;
	static const char *const cases[][2] = {
		{ "dotdot", "t.addfile(tarfile.TarInfo('../evil'), io.BytesIO(b''))" },
		{ "dotdot-inside", "t.addfile(tarfile.TarInfo('a/../../evil'), io.BytesIO(b''))" },
		{ "absolute", "t.addfile(tarfile.TarInfo(ABS), io.BytesIO(b''))" },
		{ "symlink", "i = tarfile.TarInfo('link'); i.type = tarfile.SYMTYPE; i.linkname = OUT; t.addfile(i)\n"
			"t.addfile(tarfile.TarInfo('link/evil'), io.BytesIO(b''))" },
		{ "hardlink", "i = tarfile.TarInfo('hl'); i.type = tarfile.LNKTYPE; i.linkname = '../evil'; t.addfile(i)" },
		{ "dir-over-symlink", "i = tarfile.TarInfo('link'); i.type = tarfile.SYMTYPE; i.linkname = OUT; t.addfile(i)\n"
			"i = tarfile.TarInfo('link/'); i.type = tarfile.DIRTYPE; i.mode = 0o777; t.addfile(i)" },
		{ "link-to-symlink", "i = tarfile.TarInfo('a/./link'); i.type = tarfile.SYMTYPE; i.linkname = OUT; t.addfile(i)\n"
			"i = tarfile.TarInfo('hl'); i.type = tarfile.LNKTYPE; i.linkname = 'a//link'; t.addfile(i)\n"
			"t.addfile(tarfile.TarInfo('hl/evil'), io.BytesIO(b''))" },
		{ "link-below-symlink", "i = tarfile.TarInfo('link'); i.type = tarfile.SYMTYPE; i.linkname = OUT; t.addfile(i)\n"
			"open(OUT + '/secret', 'w').write('outside')\n"
			"i = tarfile.TarInfo('hl'); i.type = tarfile.LNKTYPE; i.linkname = 'link/secret'; t.addfile(i)" },
	};
	char *outside = xasprintf("%s/victim", tmp);
	char *abs = xasprintf("%s/evil", outside);

	if (!have("python3")) {
		skip(3 * (int)BOP_ARRAY_SIZE(cases), "python3 is not installed");
		goto out;
	}
	mkdir(outside, 0755);
	cfg = xasprintf("{\"path\": \"/unused\", \"restore\": {\"path\": \"%s\"}}", target);
	/* Build with the real paths substituted in python directly. */
	for (size_t i = 0; i < BOP_ARRAY_SIZE(cases); i++) {
		char *tar = xasprintf("%s/%s.tar", tmp, cases[i][0]);
		int ret = run("python3 -c \"import tarfile, io\nABS = '%s'\nOUT = '%s'\n"
			"t = tarfile.open('%s', 'w', format=tarfile.PAX_FORMAT)\n%s\nt.close()\"",
			abs, outside, tar, cases[i][1]);

		ok(ret == 0, "%s: python builds the archive", cases[i][0]);
		ret = restore_raw(cfg, tar, -1);
		ok(ret < 0, "%s: the restore is refused: %s", cases[i][0], bop_error_last());
		ok(access(abs, F_OK) != 0 && access(target, F_OK) != 0 && staging_dirs(outside) == 0,
			"%s: nothing escapes, no target and no staging directory", cases[i][0]);
		free(tar);
	}
	free(cfg);
out:
	free(target);
	free(outside);
	free(abs);
}

/* Reads a whole files backup source into nothing; the error message into `msg`. */
static int drain_backup(const char *root, char *msg, size_t msglen, long change_after)
{
	char *cfg = xasprintf("{\"path\": \"%s\"}", root), *big = xasprintf("%s/big", root);
	bop_engine_t *e = NULL;
	bop_source_t *src = NULL;
	char buf[16384];
	size_t got = 1;
	long total = 0;
	int ret;

	ret = bop_engine_open(&e, "files", cfg);
	if (ret == 0)
		ret = bop_engine_backup(e, &src);
	while (ret == 0 && got > 0) {
		ret = bop_source_read(src, buf, sizeof(buf), &got);
		total += (long)got;
		if (change_after >= 0 && total >= change_after) {
			run("echo appended >> '%s'", big);
			change_after = -1;
		}
	}
	if (ret == 0)
		ret = bop_source_close(src);
	snprintf(msg, msglen, "%s", bop_error_last());
	bop_source_free(src);
	bop_engine_free(e);
	free(cfg);
	free(big);
	return ret;
}

static void test_unreadable(void)
{
	char *root = xasprintf("%s/unreadable", tmp), *secret = xasprintf("%s/unreadable/secret", tmp);
	char msg[2048] = "";
	int ret, status, fds[2];
	pid_t pid;

	mkdir(root, 0755);
	write_file(secret, "top secret\n", 11, 0000);
	if (geteuid() != 0) {
		ret = drain_backup(root, msg, sizeof(msg), -1);
	} else {
		/* Root reads everything: read as nobody, with the file still root's. */
		chmod(tmp, 0711);
		if (chown(root, 65534, 65534) < 0)
			exit(2);
		if (pipe(fds) < 0)
			exit(2);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			if (setgid(65534) < 0 || setuid(65534) < 0)
				_exit(3);
			ret = drain_backup(root, msg, sizeof(msg), -1);
			if (write(fds[1], msg, strlen(msg)) < 0)
				_exit(4);
			_exit(ret == 0 ? 0 : 1);
		}
		close(fds[1]);
		memset(msg, 0, sizeof(msg));
		if (read(fds[0], msg, sizeof(msg) - 1) < 0)
			msg[0] = '\0';
		close(fds[0]);
		waitpid(pid, &status, 0);
		ret = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
		chmod(tmp, 0700);
	}
	ok(ret < 0 && strstr(msg, "secret") && strstr(msg, "exclude"),
		"an unreadable file fails the backup, naming it: %s", msg);
	free(root);
	free(secret);
}

static void test_changing(void)
{
	char *root = xasprintf("%s/changing", tmp), *big = xasprintf("%s/changing/big", tmp);
	size_t n = 2 << 20;
	char *data = calloc(1, n), msg[2048];
	int ret;

	mkdir(root, 0755);
	write_file(big, data, n, 0644);
	log_text[0] = '\0';
	bop_log_set_callback(log_cb, NULL);
	ret = drain_backup(root, msg, sizeof(msg), 300000);
	bop_log_set_callback(NULL, NULL);
	ok(ret == 0, "a file growing during the backup does not fail it: %s", ret ? msg : "ok");
	ok(strstr(log_text, "big") && strstr(log_text, "changed while"), "a warning names it: %s", log_text);
	free(data);
	free(root);
	free(big);
}

int main(void)
{
	char tmpl[] = "/tmp/bop-files-XXXXXX";
	env_t c = { 0 };

	bop_log_set_level(BOP_LOG_WARN);
	tmp = mkdtemp(tmpl);
	if (!tmp)
		return 2;
	test_config();
	if (env_init(&c) == 0) {
		test_round_trip(&c);
		test_overwrite_and_abort(&c);
	} else {
		skip(1, "no catalog");
	}
	test_hostile();
	test_unreadable();
	test_changing();
	env_free(&c);
	remove_tree(tmp);
	return done_testing();
}
