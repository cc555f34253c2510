/* manifest.json: round trip, forward compatibility, and strict rejection naming the field. */
#include "catalog-test.h"

#define ID "20261121T020000Z-k3f9"

/* A bad document: `from` in the valid one replaced by `to`; the message must name `field`. */
typedef struct bad_case {
	const char *what;
	const char *from;
	const char *to;
	const char *field;
} bad_case_t;

static const bad_case_t bad_cases[] = {
	{ "wrong format", "manifest/v1", "manifest/v2", "format" },
	{ "missing id", "\"id\": \"" ID "\",", "", "id is missing" },
	{ "id with a path", "\"id\": \"" ID "\"", "\"id\": \"../../etc\"", "id" },
	{ "id not a string", "\"id\": \"" ID "\"", "\"id\": 17", "id must be a string" },
	{ "name with ..", "shop/orders-db\",\n", "shop/../x\",\n", "name" },
	{ "name with leading /", "\"name\": \"shop", "\"name\": \"/shop", "name" },
	{ "name with empty part", "shop/orders-db\",\n", "shop//orders-db\",\n", "name" },
	{ "empty engine", "\"postgres\"", "\"\"", "engine is empty" },
	{ "missing tool", "\"tool\"", "\"tuul\"", "tool is missing" },
	{ "tool version not string", "\"version\": \"0.1.0\"", "\"version\": 1", "tool.version" },
	{ "start time not RFC 3339", "2026-11-21T02:00:00Z", "2026-11-21 02:00:00", "startTime" },
	{ "start time impossible date", "2026-11-21T02:00:00Z", "2026-02-30T02:00:00Z", "startTime" },
	{ "start time with offset", "2026-11-21T02:00:00Z", "2026-11-21T02:00:00+01:00", "startTime" },
	{ "end before start", "2026-11-21T02:01:30Z", "2026-11-21T01:00:00Z", "endTime" },
	{ "plain missing", "\"plain\"", "\"plane\"", "plain is missing" },
	{ "plain.bytes negative", "\"bytes\": 1048576", "\"bytes\": -1", "plain.bytes" },
	{ "plain.bytes string", "\"bytes\": 1048576", "\"bytes\": \"1048576\"", "plain.bytes must be an integer" },
	{ "plain.bytes fraction", "\"bytes\": 1048576", "\"bytes\": 1.5", "plain.bytes" },
	{ "stored.bytes too large", "\"bytes\": 4242", "\"bytes\": 18446744073709551615", "stored.bytes" },
	{ "plain.sha256 short", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"e3b0c442", "plain.sha256" },
	{ "stored.sha256 uppercase", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "stored.sha256" },
	{ "stored.sha256 not hex", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "stored.sha256" },
	{ "unknown compression", "\"zstd\"", "\"lz4\"", "compression.algorithm" },
	{ "compression level too high", "\"level\": 3", "\"level\": 99", "compression.level" },
	{ "compression not an object", "\"compression\": {", "\"compression\": [ ], \"x\": {",
		"compression must be an object" },
	{ "unknown encryption", "\"type\": \"x25519\"", "\"type\": \"rsa\"", "encryption.type" },
	{ "recipients not an array", "[ \"sha256:0123456789abcdef\" ]", "\"sha256:0123456789abcdef\"",
		"encryption.recipients" },
	{ "recipients without encryption", "\"type\": \"x25519\"", "\"type\": \"none\"",
		"encryption.recipients" },
	{ "exit status out of range", "\"exitStatus\": 0", "\"exitStatus\": 300", "producer.exitStatus" },
	{ "tags not strings", "\"tags\": [  ]", "\"tags\": [ 1 ]", "tags[0]" },
	{ "tag with a comma", "\"tags\": [  ]", "\"tags\": [ \"a,b\" ]", "tags[0]" },
	{ "object escapes", "\"object\": \"shop", "\"object\": \"../../etc/passwd\", \"x\": \"", "object" },
	{ "object absolute", "\"object\": \"shop", "\"object\": \"/shop", "object" },
	{ "missing object", "\"object\"", "\"objekt\"", "object is missing" },
	{ "truncated document", "}\n", "", "not JSON" },
	{ "trailing garbage", "}\n", "} {}", "after the JSON document" },
};

static char *replace(const char *doc, const char *from, const char *to)
{
	const char *at = strstr(doc, from);
	char *out = NULL;

	if (!at)
		return NULL;
	if (asprintf(&out, "%.*s%s%s", (int)(at - doc), doc, to, at + strlen(from)) < 0)
		exit(2);
	return out;
}

static void test_round_trip(void)
{
	char *json = manifest_json(ID, utc("2026-11-21T02:00:00Z"), "\"pinned\", \"nightly\"");
	char *again = NULL, *third = NULL;
	bop_manifest_t *m = NULL, *m2 = NULL;
	int ret;

	ret = bop_manifest_parse(&m, json, strlen(json));
	is_int(ret, 0, "a valid manifest parses");
	if (ret < 0) {
		diag("%s", bop_error_last());
		bop_free(json);
		return;
	}
	is_str(bop_manifest_id(m), ID, "id");
	is_str(bop_manifest_name(m), "shop/orders-db", "name");
	is_str(bop_manifest_engine(m), "postgres", "engine");
	is_int(bop_manifest_start_time(m), utc("2026-11-21T02:00:00Z"), "start time");
	is_int(bop_manifest_end_time(m), utc("2026-11-21T02:01:30Z"), "end time");
	is_int(bop_manifest_plain_bytes(m), 1048576, "plain bytes");
	is_int(bop_manifest_stored_bytes(m), 4242, "stored bytes");
	is_str(bop_manifest_plain_sha256(m),
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "plain sha256");
	is_str(bop_manifest_stored_sha256(m),
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "stored sha256");
	is_int(bop_manifest_compression(m), BOP_COMPRESSION_ZSTD, "compression");
	is_str(bop_manifest_encryption(m), "x25519", "encryption");
	is_str(bop_manifest_object_key(m), "shop/orders-db/" ID "/data.zst.age", "object key");
	is_int(bop_manifest_tag_count(m), 2, "two tags");
	is_str(bop_manifest_tag(m, 0), "pinned", "first tag");
	is_str(bop_manifest_tag(m, 1), "nightly", "second tag");
	ok(bop_manifest_tag(m, 2) == NULL, "no third tag");

	is_int(bop_manifest_to_json(m, &again), 0, "serializes");
	ok(again && strstr(again, "\"format\": \"backupop.io/manifest/v1\""), "format recorded");
	ok(again && strstr(again, "\"startTime\": \"2026-11-21T02:00:00Z\""), "time as RFC 3339 UTC");
	ok(again && strstr(again, "sha256:0123456789abcdef"), "recipient fingerprints kept");
	ret = again ? bop_manifest_parse(&m2, again, strlen(again)) : -1;
	is_int(ret, 0, "the serialized manifest parses");
	if (ret == 0) {
		is_int(bop_manifest_to_json(m2, &third), 0, "serializes again");
		is_str(third, again, "serialization is stable");
		is_str(bop_manifest_id(m2), ID, "id survives");
		is_int(bop_manifest_start_time(m2), bop_manifest_start_time(m), "time survives");
	}
	bop_free(third);
	bop_free(again);
	bop_manifest_free(m2);
	bop_manifest_free(m);
	bop_free(json);
}

static void test_unknown_fields(void)
{
	char *json = manifest_json(ID, utc("2026-11-21T02:00:00Z"), NULL);
	char *ext = replace(json, "\"engine\"",
		"\"namespace\": \"shop\", \"future\": { \"x\": [1, 2] }, \"engine\"");
	bop_manifest_t *m = NULL;
	int ret = bop_manifest_parse(&m, ext, strlen(ext));

	is_int(ret, 0, "unknown fields are tolerated (forward compatibility)");
	if (ret < 0)
		diag("%s", bop_error_last());
	is_int(bop_manifest_tag_count(m), 0, "an empty tag list");
	bop_manifest_free(m);
	free(ext);
	bop_free(json);
}

static void test_bad_documents(void)
{
	char *json = manifest_json(ID, utc("2026-11-21T02:00:00Z"), NULL);

	for (size_t i = 0; i < BOP_ARRAY_SIZE(bad_cases); i++) {
		const bad_case_t *c = &bad_cases[i];
		char *doc = replace(json, c->from, c->to);
		bop_manifest_t *m = NULL;
		int ret, named;

		if (!doc) {
			ok(0, "%s: test template lacks '%s'", c->what, c->from);
			continue;
		}
		ret = bop_manifest_parse(&m, doc, strlen(doc));
		ok(ret == BOP_EFORMAT && !m, "%s: rejected with BOP_EFORMAT", c->what);
		named = strstr(bop_error_last(), c->field) != NULL;
		ok(named, "%s: message names the field", c->what);
		if (!named || ret != BOP_EFORMAT)
			diag("ret %d, message: %s", ret, bop_error_last());
		bop_manifest_free(m);
		free(doc);
	}
	bop_free(json);
}

static void test_bad_inputs(void)
{
	char *json = manifest_json(ID, utc("2026-11-21T02:00:00Z"), NULL);
	bop_manifest_t *m = NULL;
	size_t big_len = (1u << 20) + 16;
	char *big = malloc(big_len + 1);
	char with_nul[] = "{\"format\": \"backupop.io\0/manifest/v1\"}";

	is_int(bop_manifest_parse(&m, "", 0), BOP_EFORMAT, "empty input");
	is_int(bop_manifest_parse(&m, "[1, 2]", 6), BOP_EFORMAT, "an array is not a manifest");
	ok(strstr(bop_error_last(), "object") != NULL, "message says it must be an object");
	is_int(bop_manifest_parse(&m, with_nul, sizeof(with_nul) - 1), BOP_EFORMAT, "embedded NUL");
	memset(big, ' ', big_len);
	memcpy(big, json, strlen(json));
	big[big_len] = '\0';
	is_int(bop_manifest_parse(&m, big, big_len), BOP_EFORMAT, "input over 1 MiB is refused");
	ok(strstr(bop_error_last(), "larger") != NULL, "message says it is too large");
	is_int(bop_manifest_parse(&m, json, strlen(json) - 3), BOP_EFORMAT, "truncated input");
	memset(big, '[', 4096);
	is_int(bop_manifest_parse(&m, big, 4096), BOP_EFORMAT, "deep nesting is refused");
	ok(m == NULL, "no manifest on failure");
	is_int(bop_manifest_parse(NULL, json, strlen(json)), BOP_EINVAL, "NULL out");
	free(big);
	bop_free(json);
}

static void test_helpers(void)
{
	ok(bop__catalog_path_valid("shop/orders-db"), "name with a slash is valid");
	ok(!bop__catalog_path_valid(""), "empty name");
	ok(!bop__catalog_path_valid("/abs"), "leading slash");
	ok(!bop__catalog_path_valid("a/../b"), "dot-dot segment");
	ok(!bop__catalog_path_valid("a/./b"), "dot segment");
	ok(!bop__catalog_path_valid("a//b"), "empty segment");
	ok(!bop__catalog_path_valid("a/"), "trailing slash");
	ok(!bop__catalog_path_valid("a\nb"), "control character");
	ok(bop__catalog_id_valid(ID), "generated-style id is valid");
	ok(!bop__catalog_id_valid("a/b"), "id with slash");
	ok(!bop__catalog_id_valid(".."), "id dot-dot");
	ok(!bop__catalog_id_valid("-x"), "id starting with '-'");
}

/* A copy of `s` with the first `old` replaced by `new`. */
static char *replace_once(const char *s, const char *old, const char *new)
{
	const char *hit = strstr(s, old);
	char *out = NULL;

	if (!hit || asprintf(&out, "%.*s%s%s", (int)(hit - s), s, new, hit + strlen(old)) < 0)
		exit(2);
	return out;
}

/* Backups started within one second keep their order through the milliseconds. */
static void test_subsecond_order(void)
{
	const char *base = "\"startTime\": \"2026-11-21T02:00:00Z\"";
	char *a0 = manifest_json("20261121T020000Z-zzzz", utc("2026-11-21T02:00:00Z"), NULL);
	char *b0 = manifest_json("20261121T020000Z-aaaa", utc("2026-11-21T02:00:00Z"), NULL);
	/* "zzzz" started first (.040) and "aaaa" later (.250): ids alone would sort wrong. */
	char *a = replace_once(a0, base, "\"startTime\": \"2026-11-21T02:00:00.040Z\"");
	char *b = replace_once(b0, base, "\"startTime\": \"2026-11-21T02:00:00.250Z\"");
	char *bad = replace_once(b0, base, "\"startTime\": \"2026-11-21T02:00:00.000Z\"");
	bop_manifest_t *ma = NULL, *mb = NULL, *again = NULL, *refused = NULL;
	bop_manifest_list_t *list = NULL;
	char *json = NULL;

	is_int(bop_manifest_parse(&ma, a, strlen(a)), 0, "a start time with milliseconds parses");
	is_int(bop_manifest_parse(&mb, b, strlen(b)), 0, "a second one too");
	is_int(bop_manifest_start_time(ma), utc("2026-11-21T02:00:00Z"), "the getter gives seconds");
	bop_manifest_to_json(mb, &json);
	ok(json && strstr(json, "2026-11-21T02:00:00.250Z") != NULL, "milliseconds survive serialization");
	ok(json && bop_manifest_parse(&again, json, strlen(json)) == 0, "and parse again");
	is_int(bop_manifest_parse(&refused, bad, strlen(bad)), BOP_EFORMAT,
		"\".000Z\" is not the canonical form and is refused");
	bop__manifest_list_new(&list);
	bop__manifest_list_append(list, mb);
	bop__manifest_list_append(list, ma);
	bop__manifest_list_sort(list);
	is_str(bop_manifest_id(bop_manifest_list_get(list, 1)), "20261121T020000Z-aaaa",
		"the later of two backups in one second sorts last (it is 'latest')");
	bop_manifest_list_free(list);
	bop_manifest_free(again);
	bop_free(json);
	free(a0);
	free(b0);
	free(a);
	free(b);
	free(bad);
}

int main(void)
{
	test_subsecond_order();
	test_round_trip();
	test_unknown_fields();
	test_bad_documents();
	test_bad_inputs();
	test_helpers();
	return done_testing();
}
