/*
 * manifest.json ("backupop.io/manifest/v1"): what a backup is. Parsed strictly, since a
 * manifest comes from storage that someone else may write to: the format, every field
 * and its type are checked, hex digests and sizes are bounded, and a failure names the
 * field. Fields this version does not know are ignored, so that newer writers can add
 * some.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#define MANIFEST_FORMAT "backupop.io/manifest/v1"
#define MANIFEST_MAX_SIZE (1u << 20)
#define MANIFEST_FILES_MAX_SIZE (64u << 20)     /* a multi-file backup lists many files */
#define MANIFEST_MAX_DEPTH 16
#define MAX_BYTES (UINT64_C(1) << 53)           /* exact in any JSON reader */
#define MAX_STRING 1024
#define MAX_LIST 1024
#define MAX_FILES 200000

struct bop_manifest {
	char *id;
	char *name;
	char *engine;
	char *tool_name;
	char *tool_version;
	int64_t start_ms;               /* unix milliseconds: orders backups of one second */
	int64_t end_ms;
	uint64_t plain_bytes;
	char plain_sha256[BOP_SHA256_HEX_SIZE];
	uint64_t stored_bytes;
	char stored_sha256[BOP_SHA256_HEX_SIZE];
	bop_compression_t compression;
	int level;
	char *encryption;
	char **recipients;              /* NULL-terminated */
	int exit_status;
	char **tags;                    /* NULL-terminated */
	size_t ntags;
	char *object;
	bool has_files;
	bop__file_entry_t *files;       /* sorted by name */
	size_t nfiles;
};

struct bop_manifest_list {
	bop_manifest_t **items;
	size_t count;
	size_t cap;
};

static const char *const compression_names[] = {
	[BOP_COMPRESSION_NONE] = "none",
	[BOP_COMPRESSION_ZSTD] = "zstd",
	[BOP_COMPRESSION_GZIP] = "gzip",
};

/* ---- paths, ids, times ---- */

static bool segment_valid(const char *s, size_t n)
{
	if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
	}
	return true;
}

bool bop__catalog_path_valid(const char *path)
{
	const char *p = path;

	if (!path || !*path || strlen(path) > MAX_STRING)
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (!segment_valid(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

static bool id_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '.' || c == '_' || c == '-');
}

bool bop__catalog_id_valid(const char *id)
{
	size_t n;

	if (!id)
		return false;
	n = strlen(id);
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!id_char(id[i], i == 0))
			return false;
	}
	return true;
}

BOP_EXTERN(int) bop_catalog_id_valid(const char *id)
{
	return bop__catalog_id_valid(id);
}

void bop__catalog_format_time(char *out, size_t size, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, size, "@%lld", (long long)t);
}

/* Manifest times: "2026-11-21T02:00:00Z", or with milliseconds "2026-11-21T02:00:00.250Z"
 * when they are not zero, so that backups started within one second still sort. */
static void format_time_ms(char *out, size_t size, int64_t ms)
{
	int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int frac = (int)(ms - sec * 1000);
	size_t n;

	bop__catalog_format_time(out, size, sec);
	n = strlen(out);
	if (frac && n > 0 && out[n - 1] == 'Z')
		snprintf(out + n - 1, size - (n - 1), ".%03dZ", frac);
}

/* Accepts exactly what format_time_ms() writes (so no "2026-02-30", no ".000"). */
static bool parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	char again[40];
	const char *end;
	int frac = 0;

	if (strlen(s) != 20 && strlen(s) != 24)
		return false;
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return false;
	if (*end == '.') {
		if (strspn(end + 1, "0123456789") != 3 || strcmp(end + 4, "Z") != 0)
			return false;
		frac = atoi(end + 1);
	} else if (strcmp(end, "Z") != 0) {
		return false;
	}
	*out = (int64_t)timegm(&tm) * 1000 + frac;
	format_time_ms(again, sizeof(again), *out);
	return strcmp(again, s) == 0;
}

static bool sha256_hex_valid(const char *s)
{
	if (!s || strlen(s) != BOP_SHA256_HEX_SIZE - 1)
		return false;
	return strspn(s, "0123456789abcdef") == BOP_SHA256_HEX_SIZE - 1;
}

/* Labels join tags with ',', so a tag cannot hold one. */
bool bop__catalog_tag_valid(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 128 || strchr(t, ','))
		return false;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	}
	return true;
}

/* ---- lifecycle ---- */

BOP_EXTERN(void) bop_manifest_free(bop_manifest_t *m)
{
	if (!m)
		return;
	free(m->id);
	free(m->name);
	free(m->engine);
	free(m->tool_name);
	free(m->tool_version);
	free(m->encryption);
	bop__strv_free(m->recipients);
	bop__strv_free(m->tags);
	free(m->object);
	for (size_t i = 0; i < m->nfiles; i++) {
		free(m->files[i].name);
		free(m->files[i].object);
	}
	free(m->files);
	free(m);
}

static int strv_copy(char ***out, size_t *count, const char *const *src)
{
	size_t n = 0;
	char **v;

	while (src && src[n])
		n++;
	v = bop__calloc(n + 1, sizeof(*v));
	if (!v)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = bop__strdup(src[i]);
		if (!v[i]) {
			bop__strv_free(v);
			return BOP_ENOMEM;
		}
	}
	*out = v;
	if (count)
		*count = n;
	return 0;
}

static int check_info(const bop__manifest_info_t *info)
{
	if (!bop__catalog_id_valid(info->id))
		return bop__error(BOP_EINVAL, "invalid backup id '%s'", info->id ? info->id : "");
	if (!bop__catalog_path_valid(info->name) || !bop__catalog_path_valid(info->object))
		return bop__error(BOP_EINVAL, "invalid catalog name or object key");
	if (!sha256_hex_valid(info->plain_sha256) || !sha256_hex_valid(info->stored_sha256))
		return bop__error(BOP_EINVAL, "invalid SHA-256 digest");
	if ((unsigned)info->compression >= BOP_ARRAY_SIZE(compression_names))
		return bop__error(BOP_EINVAL, "unknown compression %d", (int)info->compression);
	for (size_t i = 0; info->tags && info->tags[i]; i++) {
		if (!bop__catalog_tag_valid(info->tags[i]))
			return bop__error(BOP_EINVAL, "invalid tag '%s': tags are 1 to 128 "
				"printable characters without ','", info->tags[i]);
	}
	return 0;
}

static int compare_files(const void *a, const void *b)
{
	return strcmp(((const bop__file_entry_t *)a)->name, ((const bop__file_entry_t *)b)->name);
}

static bool file_entry_valid(const bop__file_entry_t *f)
{
	return bop__catalog_path_valid(f->name) && bop__catalog_path_valid(f->object) &&
		sha256_hex_valid(f->plain_sha256) && sha256_hex_valid(f->stored_sha256) &&
		f->plain_bytes <= MAX_BYTES && f->stored_bytes <= MAX_BYTES;
}

/* Sorted by name, so that lookups can bisect and the document is stable. */
static int copy_files(bop_manifest_t *m, const bop__file_entry_t *files, size_t n)
{
	m->has_files = true;
	if (n > MAX_FILES)
		return bop__error(BOP_EINVAL, "a backup holds at most %d files", MAX_FILES);
	m->files = bop__calloc(n ? n : 1, sizeof(*m->files));
	if (!m->files)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!file_entry_valid(&files[i]))
			return bop__error(BOP_EINVAL, "invalid file entry \"%s\"",
				files[i].name ? files[i].name : "");
		m->files[i] = files[i];
		m->files[i].name = bop__strdup(files[i].name);
		m->files[i].object = bop__strdup(files[i].object);
		m->nfiles = i + 1;
		if (!m->files[i].name || !m->files[i].object)
			return BOP_ENOMEM;
	}
	if (n > 1)
		qsort(m->files, n, sizeof(*m->files), compare_files);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(m->files[i - 1].name, m->files[i].name))
			return bop__error(BOP_EINVAL, "file \"%s\" is listed twice", m->files[i].name);
	}
	return 0;
}

int bop__manifest_new(bop_manifest_t **out, const bop__manifest_info_t *info)
{
	bop_manifest_t *m;
	int ret;

	*out = NULL;
	ret = check_info(info);
	if (ret < 0)
		return ret;
	m = bop__calloc(1, sizeof(*m));
	if (!m)
		return BOP_ENOMEM;
	m->id = bop__strdup(info->id);
	m->name = bop__strdup(info->name);
	m->engine = bop__strdup(info->engine ? info->engine : "stdin");
	m->tool_name = bop__strdup("backupop");
	m->tool_version = bop__strdup(bop_version_string());
	m->encryption = bop__strdup(info->encryption ? info->encryption : "none");
	m->object = bop__strdup(info->object);
	if (!m->id || !m->name || !m->engine || !m->tool_name || !m->tool_version ||
	    !m->encryption || !m->object) {
		ret = BOP_ENOMEM;
		goto fail;
	}
	ret = strv_copy(&m->recipients, NULL, info->recipients);
	if (ret == 0)
		ret = strv_copy(&m->tags, &m->ntags, info->tags);
	if (ret < 0)
		goto fail;
	m->start_ms = info->start_ms;
	m->end_ms = info->end_ms;
	m->plain_bytes = info->plain_bytes;
	m->stored_bytes = info->stored_bytes;
	memcpy(m->plain_sha256, info->plain_sha256, BOP_SHA256_HEX_SIZE);
	memcpy(m->stored_sha256, info->stored_sha256, BOP_SHA256_HEX_SIZE);
	m->compression = info->compression;
	m->level = info->level;
	m->exit_status = info->exit_status;
	if (info->has_files && (ret = copy_files(m, info->files, info->nfiles)) < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	bop_manifest_free(m);
	return ret;
}

/* ---- parsing ---- */

static const char *type_name(json_type t)
{
	switch (t) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double: return "a number";
	case json_type_int: return "an integer";
	case json_type_object: return "an object";
	case json_type_array: return "an array";
	case json_type_string: return "a string";
	}
	return "a value";
}

static int bad(const char *path, const char *what)
{
	return bop__error(BOP_EFORMAT, "invalid manifest: %s %s", path, what);
}

/* The member `key` of `obj`, which must exist and have type `type`. */
static int member(json_object *obj, const char *key, const char *path, json_type type,
	json_object **out)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return bad(path, "is missing");
	if (json_object_get_type(v) != type) {
		return bop__error(BOP_EFORMAT, "invalid manifest: %s must be %s, not %s", path,
			type_name(type), type_name(json_object_get_type(v)));
	}
	*out = v;
	return 0;
}

static int string_value(json_object *v, const char *path, const char **out)
{
	const char *s = json_object_get_string(v);
	int len = json_object_get_string_len(v);

	if (len <= 0)
		return bad(path, "is empty");
	if (len > MAX_STRING || strlen(s) != (size_t)len)
		return bad(path, "is too long or contains a NUL character");
	*out = s;
	return 0;
}

static int member_string(json_object *obj, const char *key, const char *path, const char **out)
{
	json_object *v = NULL;
	int ret = member(obj, key, path, json_type_string, &v);

	return ret < 0 ? ret : string_value(v, path, out);
}

static int member_dup(json_object *obj, const char *key, const char *path, char **out)
{
	const char *s = NULL;
	int ret = member_string(obj, key, path, &s);

	if (ret < 0)
		return ret;
	*out = bop__strdup(s);
	return *out ? 0 : BOP_ENOMEM;
}

static int member_int(json_object *obj, const char *key, const char *path, int64_t max,
	int64_t *out)
{
	json_object *v = NULL;
	int64_t n = 0;
	int ret = member(obj, key, path, json_type_int, &v);

	if (ret < 0)
		return ret;
	n = json_object_get_int64(v);
	if (n < 0 || n > max) {
		return bop__error(BOP_EFORMAT, "invalid manifest: %s must be between 0 and %lld",
			path, (long long)max);
	}
	*out = n;
	return 0;
}

static int member_time(json_object *obj, const char *key, const char *path, int64_t *out)
{
	const char *s = NULL;
	int ret = member_string(obj, key, path, &s);

	if (ret < 0)
		return ret;
	if (!parse_time(s, out))
		return bad(path, "must be a UTC time like \"2026-11-21T02:00:00Z\"");
	return 0;
}

static int parse_header(json_object *root, bop_manifest_t *m)
{
	json_object *tool;
	const char *format;
	int ret;

	ret = member_string(root, "format", "format", &format);
	if (ret < 0)
		return ret;
	if (strcmp(format, MANIFEST_FORMAT) != 0)
		return bop__error(BOP_EFORMAT, "invalid manifest: format is \"%.64s\", expected \""
			MANIFEST_FORMAT "\"", format);
	if ((ret = member_dup(root, "id", "id", &m->id)) < 0 ||
	    (ret = member_dup(root, "name", "name", &m->name)) < 0 ||
	    (ret = member_dup(root, "engine", "engine", &m->engine)) < 0 ||
	    (ret = member(root, "tool", "tool", json_type_object, &tool)) < 0 ||
	    (ret = member_dup(tool, "name", "tool.name", &m->tool_name)) < 0 ||
	    (ret = member_dup(tool, "version", "tool.version", &m->tool_version)) < 0)
		return ret;
	if (!bop__catalog_id_valid(m->id))
		return bad("id", "is not a valid backup id");
	if (!bop__catalog_path_valid(m->name))
		return bad("name", "is not a valid catalog name");
	return 0;
}

static int parse_times(json_object *root, bop_manifest_t *m)
{
	int ret;

	if ((ret = member_time(root, "startTime", "startTime", &m->start_ms)) < 0 ||
	    (ret = member_time(root, "endTime", "endTime", &m->end_ms)) < 0)
		return ret;
	if (m->end_ms < m->start_ms)
		return bad("endTime", "is before startTime");
	return 0;
}

/* {"bytes": n, "sha256": "..."} at `key`. */
static int parse_digest(json_object *root, const char *key, uint64_t *bytes, char *hex)
{
	char path[32];
	json_object *obj = NULL;
	const char *s = NULL;
	int64_t n = 0;
	int ret;

	ret = member(root, key, key, json_type_object, &obj);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s.bytes", key);
	ret = member_int(obj, "bytes", path, (int64_t)MAX_BYTES, &n);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s.sha256", key);
	ret = member_string(obj, "sha256", path, &s);
	if (ret < 0)
		return ret;
	if (!sha256_hex_valid(s))
		return bad(path, "must be 64 lowercase hex digits");
	*bytes = (uint64_t)n;
	memcpy(hex, s, BOP_SHA256_HEX_SIZE);
	return 0;
}

static int parse_compression(json_object *root, bop_manifest_t *m)
{
	json_object *obj = NULL;
	const char *alg = NULL;
	int64_t level = 0;
	int ret;

	if ((ret = member(root, "compression", "compression", json_type_object, &obj)) < 0 ||
	    (ret = member_string(obj, "algorithm", "compression.algorithm", &alg)) < 0 ||
	    (ret = member_int(obj, "level", "compression.level", 22, &level)) < 0)
		return ret;
	for (size_t i = 0; i < BOP_ARRAY_SIZE(compression_names); i++) {
		if (strcmp(alg, compression_names[i]) == 0) {
			m->compression = (bop_compression_t)i;
			m->level = (int)level;
			return 0;
		}
	}
	return bad("compression.algorithm", "must be \"none\", \"zstd\" or \"gzip\"");
}

/* An array of at most MAX_LIST non-empty strings, each accepted by `valid`. */
static int parse_strings(json_object *obj, const char *key, const char *path,
	bool (*valid)(const char *), char ***out, size_t *count)
{
	json_object *arr;
	size_t n;
	char **v;
	int ret;

	ret = member(obj, key, path, json_type_array, &arr);
	if (ret < 0)
		return ret;
	n = json_object_array_length(arr);
	if (n > MAX_LIST)
		return bad(path, "has too many entries");
	v = bop__calloc(n + 1, sizeof(*v));
	if (!v)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		const char *s = NULL;

		if (!e || json_object_get_type(e) != json_type_string ||
		    string_value(e, path, &s) < 0 || !valid(s)) {
			ret = bop__error(BOP_EFORMAT, "invalid manifest: %s[%zu] is not a valid entry",
				path, i);
			goto fail;
		}
		v[i] = bop__strdup(s);
		if (!v[i]) {
			ret = BOP_ENOMEM;
			goto fail;
		}
	}
	*out = v;
	if (count)
		*count = n;
	return 0;
fail:
	bop__strv_free(v);
	return ret;
}

static bool fingerprint_valid(const char *s)
{
	return strlen(s) <= 128;
}

static int parse_encryption(json_object *root, bop_manifest_t *m)
{
	json_object *obj = NULL;
	int ret;

	if ((ret = member(root, "encryption", "encryption", json_type_object, &obj)) < 0 ||
	    (ret = member_dup(obj, "type", "encryption.type", &m->encryption)) < 0 ||
	    (ret = parse_strings(obj, "recipients", "encryption.recipients", fingerprint_valid,
		&m->recipients, NULL)) < 0)
		return ret;
	if (strcmp(m->encryption, "none") != 0 && strcmp(m->encryption, "x25519") != 0 &&
	    strcmp(m->encryption, "scrypt") != 0)
		return bad("encryption.type", "must be \"none\", \"x25519\" or \"scrypt\"");
	if (strcmp(m->encryption, "none") == 0 && m->recipients[0])
		return bad("encryption.recipients", "must be empty when the type is \"none\"");
	return 0;
}

static int parse_rest(json_object *root, bop_manifest_t *m)
{
	json_object *producer = NULL;
	int64_t status = 0;
	int ret;

	if ((ret = member(root, "producer", "producer", json_type_object, &producer)) < 0 ||
	    (ret = member_int(producer, "exitStatus", "producer.exitStatus", 255, &status)) < 0 ||
	    (ret = parse_strings(root, "tags", "tags", bop__catalog_tag_valid, &m->tags, &m->ntags)) < 0 ||
	    (ret = member_dup(root, "object", "object", &m->object)) < 0)
		return ret;
	m->exit_status = (int)status;
	if (!bop__catalog_path_valid(m->object))
		return bad("object", "is not a valid storage key");
	return 0;
}

/* One element of "files": {"name", "object", "plain": {...}, "stored": {...}}. */
static int parse_file(json_object *e, size_t i, bop__file_entry_t *f)
{
	char path[48];
	const char *s = NULL;
	int ret;

	snprintf(path, sizeof(path), "files[%zu]", i);
	if (json_object_get_type(e) != json_type_object)
		return bad(path, "must be an object");
	snprintf(path, sizeof(path), "files[%zu].name", i);
	if ((ret = member_string(e, "name", path, &s)) < 0)
		return ret;
	if (!bop__catalog_path_valid(s))
		return bad(path, "is not a valid file name");
	if (!(f->name = bop__strdup(s)))
		return BOP_ENOMEM;
	snprintf(path, sizeof(path), "files[%zu].object", i);
	if ((ret = member_string(e, "object", path, &s)) < 0)
		return ret;
	if (!bop__catalog_path_valid(s))
		return bad(path, "is not a valid storage key");
	if (!(f->object = bop__strdup(s)))
		return BOP_ENOMEM;
	if ((ret = parse_digest(e, "plain", &f->plain_bytes, f->plain_sha256)) < 0 ||
	    (ret = parse_digest(e, "stored", &f->stored_bytes, f->stored_sha256)) < 0)
		return bop__error_wrap("in files[%zu]", i);
	return 0;
}

/* "files" is optional: manifests of single-stream backups have none. */
static int parse_files(json_object *root, bop_manifest_t *m)
{
	json_object *arr = NULL;
	size_t n;
	int ret;

	if (!json_object_object_get_ex(root, "files", &arr))
		return 0;
	if ((ret = member(root, "files", "files", json_type_array, &arr)) < 0)
		return ret;
	n = json_object_array_length(arr);
	if (n > MAX_FILES)
		return bad("files", "has too many entries");
	m->has_files = true;
	m->files = bop__calloc(n ? n : 1, sizeof(*m->files));
	if (!m->files)
		return BOP_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		m->nfiles = i + 1;
		ret = parse_file(json_object_array_get_idx(arr, i), i, &m->files[i]);
		if (ret < 0)
			return ret;
	}
	if (n > 1)
		qsort(m->files, n, sizeof(*m->files), compare_files);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(m->files[i - 1].name, m->files[i].name))
			return bad("files", "lists a name twice");
	}
	return 0;
}

/* The input is not NUL-terminated: look at exactly `len` bytes. */
static bool only_whitespace(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!strchr(" \t\r\n", s[i]))
			return false;
	}
	return true;
}

static int parse_document(const char *json, size_t len, json_object **out)
{
	json_tokener *tok;
	json_object *root;
	int ret = 0;

	*out = NULL;
	tok = json_tokener_new_ex(MANIFEST_MAX_DEPTH);
	if (!tok)
		return bop__error_oom();
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root) {
		ret = bop__error(BOP_EFORMAT, "invalid manifest: not JSON (%s at offset %zu)",
			json_tokener_error_desc(json_tokener_get_error(tok)),
			json_tokener_get_parse_end(tok));
		goto out;
	}
	if (!only_whitespace(json + json_tokener_get_parse_end(tok),
	    len - json_tokener_get_parse_end(tok))) {
		ret = bop__error(BOP_EFORMAT, "invalid manifest: unexpected data after the JSON document");
		goto out;
	}
	if (json_object_get_type(root) != json_type_object) {
		ret = bop__error(BOP_EFORMAT, "invalid manifest: the document must be a JSON object");
		goto out;
	}
	*out = root;
	root = NULL;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

BOP_EXTERN(int) bop_manifest_parse(bop_manifest_t **out, const char *json, size_t len)
{
	json_object *root = NULL;
	bop_manifest_t *m = NULL;
	int ret;

	if (!out || (!json && len))
		return bop__error(BOP_EINVAL, "bop_manifest_parse: invalid arguments");
	*out = NULL;
	if (len == 0 || !json)
		return bop__error(BOP_EFORMAT, "invalid manifest: empty or contains a NUL byte");
	/* Only a manifest that lists files may be larger than 1 MiB. */
	if (len > MANIFEST_FILES_MAX_SIZE || (len > MANIFEST_MAX_SIZE &&
	    !memmem(json, len, "\"files\"", 7)))
		return bop__error(BOP_EFORMAT, "invalid manifest: larger than %u bytes",
			len > MANIFEST_FILES_MAX_SIZE ? MANIFEST_FILES_MAX_SIZE : MANIFEST_MAX_SIZE);
	if (memchr(json, '\0', len))
		return bop__error(BOP_EFORMAT, "invalid manifest: empty or contains a NUL byte");
	ret = parse_document(json, len, &root);
	if (ret < 0)
		return ret;
	m = bop__calloc(1, sizeof(*m));
	if (!m) {
		ret = BOP_ENOMEM;
		goto out;
	}
	if ((ret = parse_header(root, m)) < 0 ||
	    (ret = parse_times(root, m)) < 0 ||
	    (ret = parse_digest(root, "plain", &m->plain_bytes, m->plain_sha256)) < 0 ||
	    (ret = parse_digest(root, "stored", &m->stored_bytes, m->stored_sha256)) < 0 ||
	    (ret = parse_compression(root, m)) < 0 ||
	    (ret = parse_encryption(root, m)) < 0 ||
	    (ret = parse_rest(root, m)) < 0 ||
	    (ret = parse_files(root, m)) < 0)
		goto out;
	*out = m;
	m = NULL;
out:
	bop_manifest_free(m);
	json_object_put(root);
	return ret;
}

/* ---- serializing ---- */

static int add(json_object *obj, const char *key, json_object *v)
{
	if (!v || json_object_object_add(obj, key, v) < 0) {
		json_object_put(v);
		return bop__error_oom();
	}
	return 0;
}

static int add_string(json_object *obj, const char *key, const char *s)
{
	return add(obj, key, json_object_new_string(s));
}

static int add_time(json_object *obj, const char *key, int64_t ms)
{
	char buf[40];

	format_time_ms(buf, sizeof(buf), ms);
	return add_string(obj, key, buf);
}

static json_object *digest_object(uint64_t bytes, const char *hex)
{
	json_object *obj = json_object_new_object();

	if (obj && (add(obj, "bytes", json_object_new_int64((int64_t)bytes)) < 0 ||
		    add_string(obj, "sha256", hex) < 0)) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

static json_object *string_array(char *const *v)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; arr && v && v[i]; i++) {
		json_object *s = json_object_new_string(v[i]);

		if (!s || json_object_array_add(arr, s) < 0) {
			json_object_put(s);
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

static json_object *pair_object(const char *k1, json_object *v1, const char *k2, json_object *v2)
{
	json_object *obj = json_object_new_object();

	if (!obj || add(obj, k1, v1) < 0) {
		json_object_put(obj);
		json_object_put(v2);
		return NULL;
	}
	if (add(obj, k2, v2) < 0) {
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

static json_object *files_array(const bop_manifest_t *m)
{
	json_object *arr = json_object_new_array_ext((int)m->nfiles);

	for (size_t i = 0; arr && i < m->nfiles; i++) {
		const bop__file_entry_t *f = &m->files[i];
		json_object *e = json_object_new_object();

		if (!e || json_object_array_add(arr, e) < 0) {
			json_object_put(e);
			json_object_put(arr);
			return NULL;
		}
		if (add_string(e, "name", f->name) < 0 || add_string(e, "object", f->object) < 0 ||
		    add(e, "plain", digest_object(f->plain_bytes, f->plain_sha256)) < 0 ||
		    add(e, "stored", digest_object(f->stored_bytes, f->stored_sha256)) < 0) {
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

static int build_document(const bop_manifest_t *m, json_object *root)
{
	int ret;

	if ((ret = add_string(root, "format", MANIFEST_FORMAT)) < 0 ||
	    (ret = add_string(root, "id", m->id)) < 0 ||
	    (ret = add_string(root, "name", m->name)) < 0 ||
	    (ret = add_string(root, "engine", m->engine)) < 0 ||
	    (ret = add(root, "tool", pair_object("name", json_object_new_string(m->tool_name),
		"version", json_object_new_string(m->tool_version)))) < 0 ||
	    (ret = add_time(root, "startTime", m->start_ms)) < 0 ||
	    (ret = add_time(root, "endTime", m->end_ms)) < 0 ||
	    (ret = add(root, "plain", digest_object(m->plain_bytes, m->plain_sha256))) < 0 ||
	    (ret = add(root, "stored", digest_object(m->stored_bytes, m->stored_sha256))) < 0 ||
	    (ret = add(root, "compression", pair_object(
		"algorithm", json_object_new_string(compression_names[m->compression]),
		"level", json_object_new_int(m->level)))) < 0 ||
	    (ret = add(root, "encryption", pair_object("type", json_object_new_string(m->encryption),
		"recipients", string_array(m->recipients)))) < 0 ||
	    (ret = add(root, "producer", json_object_new_object())) < 0 ||
	    (ret = add(json_object_object_get(root, "producer"), "exitStatus",
		json_object_new_int(m->exit_status))) < 0 ||
	    (ret = add(root, "tags", string_array(m->tags))) < 0 ||
	    (ret = add_string(root, "object", m->object)) < 0)
		return ret;
	if (m->has_files && (ret = add(root, "files", files_array(m))) < 0)
		return ret;
	return 0;
}

BOP_EXTERN(int) bop_manifest_to_json(const bop_manifest_t *m, char **json)
{
	json_object *root;
	const char *text;
	int ret;

	if (!m || !json)
		return bop__error(BOP_EINVAL, "bop_manifest_to_json: invalid arguments");
	*json = NULL;
	root = json_object_new_object();
	if (!root)
		return bop__error_oom();
	ret = build_document(m, root);
	if (ret < 0)
		goto out;
	text = json_object_to_json_string_ext(root,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	*json = text ? bop__sprintf("%s\n", text) : NULL;
	if (!*json)
		ret = bop__error_oom();
out:
	json_object_put(root);
	return ret;
}

/* ---- getters ---- */

BOP_EXTERN(const char *) bop_manifest_id(const bop_manifest_t *m)
{
	return m ? m->id : NULL;
}

BOP_EXTERN(const char *) bop_manifest_name(const bop_manifest_t *m)
{
	return m ? m->name : NULL;
}

BOP_EXTERN(const char *) bop_manifest_engine(const bop_manifest_t *m)
{
	return m ? m->engine : NULL;
}

BOP_EXTERN(int64_t) bop_manifest_start_time(const bop_manifest_t *m)
{
	return m ? m->start_ms / 1000 : 0;
}

BOP_EXTERN(int64_t) bop_manifest_end_time(const bop_manifest_t *m)
{
	return m ? m->end_ms / 1000 : 0;
}

BOP_EXTERN(uint64_t) bop_manifest_plain_bytes(const bop_manifest_t *m)
{
	return m ? m->plain_bytes : 0;
}

BOP_EXTERN(uint64_t) bop_manifest_stored_bytes(const bop_manifest_t *m)
{
	return m ? m->stored_bytes : 0;
}

BOP_EXTERN(const char *) bop_manifest_plain_sha256(const bop_manifest_t *m)
{
	return m ? m->plain_sha256 : NULL;
}

BOP_EXTERN(const char *) bop_manifest_stored_sha256(const bop_manifest_t *m)
{
	return m ? m->stored_sha256 : NULL;
}

BOP_EXTERN(bop_compression_t) bop_manifest_compression(const bop_manifest_t *m)
{
	return m ? m->compression : BOP_COMPRESSION_NONE;
}

BOP_EXTERN(const char *) bop_manifest_encryption(const bop_manifest_t *m)
{
	return m ? m->encryption : NULL;
}

BOP_EXTERN(const char *) bop_manifest_object_key(const bop_manifest_t *m)
{
	return m ? m->object : NULL;
}

BOP_EXTERN(size_t) bop_manifest_tag_count(const bop_manifest_t *m)
{
	return m ? m->ntags : 0;
}

BOP_EXTERN(const char *) bop_manifest_tag(const bop_manifest_t *m, size_t i)
{
	return m && i < m->ntags ? m->tags[i] : NULL;
}

/* ---- files ---- */

const bop__file_entry_t *bop__manifest_files(const bop_manifest_t *m, size_t *n)
{
	*n = m && m->has_files ? m->nfiles : 0;
	return m && m->has_files ? m->files : NULL;
}

BOP_EXTERN(int) bop_manifest_has_files(const bop_manifest_t *m)
{
	return m && m->has_files;
}

BOP_EXTERN(size_t) bop_manifest_file_count(const bop_manifest_t *m)
{
	return m ? m->nfiles : 0;
}

static int fill_file(const bop__file_entry_t *f, bop_manifest_file_t *out)
{
	if (BOP__VERSION_CHECK("bop_manifest_file_t", NULL, out->version,
		MANIFEST_FILE_VERSION) < 0)
		return BOP_EVERSION;
	out->name = f->name;
	out->object_key = f->object;
	out->plain_bytes = f->plain_bytes;
	out->plain_sha256 = f->plain_sha256;
	out->stored_bytes = f->stored_bytes;
	out->stored_sha256 = f->stored_sha256;
	return 0;
}

BOP_EXTERN(int) bop_manifest_file(const bop_manifest_t *m, bop_manifest_file_t *out, size_t i)
{
	if (!m || !out)
		return bop__error(BOP_EINVAL, "bop_manifest_file: invalid arguments");
	if (i >= m->nfiles)
		return bop__error(BOP_ENOTFOUND, "backup %s has no file #%zu", m->id, i);
	return fill_file(&m->files[i], out);
}

BOP_EXTERN(int) bop_manifest_file_find(const bop_manifest_t *m, bop_manifest_file_t *out,
	const char *name)
{
	bop__file_entry_t key = { 0 };
	const bop__file_entry_t *f;

	if (!m || !name || !out)
		return bop__error(BOP_EINVAL, "bop_manifest_file_find: invalid arguments");
	key.name = (char *)name;
	f = m->nfiles ? bsearch(&key, m->files, m->nfiles, sizeof(*m->files), compare_files) : NULL;
	if (!f)
		return bop__error(BOP_ENOTFOUND, "backup %s has no file \"%s\"", m->id, name);
	return fill_file(f, out);
}

/* ---- lists ---- */

int bop__manifest_list_new(bop_manifest_list_t **out)
{
	*out = bop__calloc(1, sizeof(**out));
	return *out ? 0 : BOP_ENOMEM;
}

int bop__manifest_list_append(bop_manifest_list_t *list, bop_manifest_t *m)
{
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		bop_manifest_t **items = realloc(list->items, cap * sizeof(*items));

		if (!items) {
			bop_manifest_free(m);
			return bop__error_oom();
		}
		list->items = items;
		list->cap = cap;
	}
	list->items[list->count++] = m;
	return 0;
}

static int compare_manifests(const void *a, const void *b)
{
	const bop_manifest_t *x = *(bop_manifest_t *const *)a;
	const bop_manifest_t *y = *(bop_manifest_t *const *)b;

	if (x->start_ms != y->start_ms)
		return x->start_ms < y->start_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

void bop__manifest_list_sort(bop_manifest_list_t *list)
{
	if (list->count > 1)
		qsort(list->items, list->count, sizeof(*list->items), compare_manifests);
}

BOP_EXTERN(size_t) bop_manifest_list_count(const bop_manifest_list_t *list)
{
	return list ? list->count : 0;
}

BOP_EXTERN(const bop_manifest_t *) bop_manifest_list_get(const bop_manifest_list_t *list, size_t i)
{
	return list && i < list->count ? list->items[i] : NULL;
}

BOP_EXTERN(void) bop_manifest_list_free(bop_manifest_list_t *list)
{
	if (!list)
		return;
	for (size_t i = 0; i < list->count; i++)
		bop_manifest_free(list->items[i]);
	free(list->items);
	free(list);
}
