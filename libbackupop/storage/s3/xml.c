/*
 * S3's XML bodies, parsed with expat into a small tree (the documents are at most a few
 * MiB: a listing page of 1000 keys), then read by element name.
 */
#include "storage/s3/s3.h"

#include <expat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XML_MAX_DEPTH 32

typedef struct builder {
	XML_Parser parser;
	s3_xml_node_t *root;
	s3_xml_node_t *stack[XML_MAX_DEPTH];
	int depth;
	int error;                      /* BOP_ENOMEM or BOP_EFORMAT once failed */
	const char *why;
} builder_t;

static void node_free(s3_xml_node_t *n)
{
	while (n) {
		s3_xml_node_t *next = n->next;

		node_free(n->child);
		free(n->name);
		free(n->text);
		free(n);
		n = next;
	}
}

void bop__s3_xml_free(s3_xml_node_t *root)
{
	node_free(root);
}

static void stop(builder_t *b, int error, const char *why)
{
	if (!b->error) {
		b->error = error;
		b->why = why;
	}
	XML_StopParser(b->parser, XML_FALSE);
}

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
	builder_t *b = data;
	s3_xml_node_t *n, *parent;

	BOP_UNUSED(attrs);
	if (b->error)
		return;
	if (b->depth >= XML_MAX_DEPTH) {
		stop(b, BOP_EFORMAT, "elements nested too deeply");
		return;
	}
	n = calloc(1, sizeof(*n));
	if (n) {
		n->name = strdup(name);
		n->text = calloc(1, 1);
	}
	if (!n || !n->name || !n->text) {
		node_free(n);
		stop(b, BOP_ENOMEM, "out of memory");
		return;
	}
	parent = b->depth ? b->stack[b->depth - 1] : NULL;
	if (!parent) {
		b->root = n;
	} else if (parent->last) {
		parent->last->next = n;
		parent->last = n;
	} else {
		parent->child = parent->last = n;
	}
	b->stack[b->depth++] = n;
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
	builder_t *b = data;

	BOP_UNUSED(name);
	if (!b->error && b->depth > 0)
		b->depth--;
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
	builder_t *b = data;
	s3_xml_node_t *n;
	char *grown;

	if (b->error || b->depth == 0 || len <= 0)
		return;
	n = b->stack[b->depth - 1];
	grown = realloc(n->text, n->text_len + (size_t)len + 1);
	if (!grown) {
		stop(b, BOP_ENOMEM, "out of memory");
		return;
	}
	memcpy(grown + n->text_len, s, (size_t)len);
	n->text_len += (size_t)len;
	grown[n->text_len] = '\0';
	n->text = grown;
}

/* S3 never sends a DTD; refusing one means no entity of the server's is ever expanded
 * (no "billion laughs", nothing external). */
static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid,
	const XML_Char *pubid, int has_internal_subset)
{
	BOP_UNUSED(name);
	BOP_UNUSED(sysid);
	BOP_UNUSED(pubid);
	BOP_UNUSED(has_internal_subset);
	stop(data, BOP_EFORMAT, "a document type declaration (S3 sends none)");
}

int bop__s3_xml_parse(s3_xml_node_t **root, const char *data, size_t len, size_t max)
{
	builder_t b = { 0 };
	int ret = 0;

	*root = NULL;
	if (len > max || len > (size_t)INT32_MAX)
		return bop__error(BOP_EFORMAT, "the S3 response is too large (%zu bytes, at most %zu expected)",
			len, max);
	b.parser = XML_ParserCreate("UTF-8");
	if (!b.parser)
		return bop__error_oom();
	XML_SetUserData(b.parser, &b);
	XML_SetElementHandler(b.parser, on_start, on_end);
	XML_SetCharacterDataHandler(b.parser, on_text);
	XML_SetStartDoctypeDeclHandler(b.parser, on_doctype);
	if (XML_Parse(b.parser, data, (int)len, XML_TRUE) == XML_STATUS_ERROR || b.error) {
		if (b.error == BOP_ENOMEM)
			ret = bop__error_oom();
		else if (b.error)
			ret = bop__error(BOP_EFORMAT, "malformed XML in the S3 response: %s", b.why);
		else
			ret = bop__error(BOP_EFORMAT, "malformed XML in the S3 response: %s at line %lu",
				XML_ErrorString(XML_GetErrorCode(b.parser)),
				(unsigned long)XML_GetCurrentLineNumber(b.parser));
	} else if (!b.root) {
		ret = bop__error(BOP_EFORMAT, "malformed XML in the S3 response: no element");
	}
	XML_ParserFree(b.parser);
	if (ret < 0)
		node_free(b.root);
	else
		*root = b.root;
	return ret;
}

s3_xml_node_t *bop__s3_xml_child(const s3_xml_node_t *node, const char *name)
{
	for (s3_xml_node_t *c = node ? node->child : NULL; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

const char *bop__s3_xml_text(const s3_xml_node_t *node, const char *name)
{
	s3_xml_node_t *c = bop__s3_xml_child(node, name);

	return c ? c->text : NULL;
}

int bop__s3_xml_error(s3_error_info_t *info, const s3_xml_node_t *root)
{
	memset(info, 0, sizeof(*info));
	if (!root || strcmp(root->name, "Error") != 0)
		return BOP_EFORMAT;
	info->code = bop__s3_xml_text(root, "Code");
	info->message = bop__s3_xml_text(root, "Message");
	info->request_id = bop__s3_xml_text(root, "RequestId");
	return info->code && *info->code ? 0 : BOP_EFORMAT;
}

void bop__s3_list_page_clear(s3_list_page_t *page)
{
	free(page->next_token);
	free(page->next_key_marker);
	free(page->next_upload_id_marker);
	memset(page, 0, sizeof(*page));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *bop__s3_url_decode(const char *text, size_t len)
{
	char *out = malloc(len + 1);
	size_t j = 0;

	if (!out) {
		bop__error_oom();
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == '%') {
			int hi = i + 2 < len ? hexval(text[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(text[i + 2]) : -1;

			if (hi < 0 || lo < 0) {
				free(out);
				bop__error(BOP_EFORMAT, "malformed URL-encoded key in the S3 listing");
				return NULL;
			}
			out[j++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (text[i] == '+') {
			out[j++] = ' ';
		} else {
			out[j++] = text[i];
		}
	}
	out[j] = '\0';
	if (strlen(out) != j) {
		free(out);
		bop__error(BOP_EFORMAT, "the S3 listing holds a key with a NUL byte");
		return NULL;
	}
	return out;
}

int64_t bop__s3_parse_iso8601(const char *text)
{
	struct tm tm = { 0 };
	const char *end;

	if (!text)
		return -1;
	end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	if (*end == '.') {
		end++;
		while (*end >= '0' && *end <= '9')
			end++;
	}
	if (*end != 'Z' || end[1])
		return -1;
	return (int64_t)timegm(&tm);
}

static bool is_true(const char *text)
{
	return text && strcmp(text, "true") == 0;
}

static int copy_opt(char **out, const char *text)
{
	if (!text || !*text)
		return 0;
	*out = bop__strdup(text);
	return *out ? 0 : BOP_ENOMEM;
}

static int wrong_root(const s3_xml_node_t *root, const char *want)
{
	s3_error_info_t info;

	if (bop__s3_xml_error(&info, root) == 0)
		return bop__error(BOP_EIO, "S3 answered with an error: %s%s%s", info.code,
			info.message && *info.message ? ": " : "", info.message ? info.message : "");
	return bop__error(BOP_EFORMAT, "unexpected S3 response: <%s> instead of <%s>", root->name,
		want);
}

/* The decoded key of an entry (always listed with encoding-type=url). */
static char *entry_key(const s3_xml_node_t *entry, bool url)
{
	const s3_xml_node_t *k = bop__s3_xml_child(entry, "Key");

	if (!k || !k->text_len) {
		bop__error(BOP_EFORMAT, "malformed S3 listing: an entry has no <Key>");
		return NULL;
	}
	return url ? bop__s3_url_decode(k->text, k->text_len) : bop__strndup(k->text, k->text_len);
}

static bool url_encoded(const s3_xml_node_t *root)
{
	const char *enc = bop__s3_xml_text(root, "EncodingType");

	return enc && strcmp(enc, "url") == 0;
}

static int list_entry(const s3_xml_node_t *c, bool url, s3_list_entry_cb cb, void *payload)
{
	const char *size_text = bop__s3_xml_text(c, "Size");
	unsigned long long size;
	char *key, *end;
	int ret;

	if (!size_text || !*size_text)
		return bop__error(BOP_EFORMAT, "malformed S3 listing: an entry has no <Size>");
	size = strtoull(size_text, &end, 10);
	if (*end)
		return bop__error(BOP_EFORMAT, "malformed S3 listing: bad <Size> \"%s\"", size_text);
	key = entry_key(c, url);
	if (!key)
		return bop_error_last_code();
	ret = cb(key, size, bop__s3_parse_iso8601(bop__s3_xml_text(c, "LastModified")), payload);
	free(key);
	return ret;
}

/* Parses a listing page whose root must be `name`: *root, whether keys are URL-encoded,
 * and page->truncated. The page is cleared first. */
static int list_root(s3_xml_node_t **root, const char *data, size_t len, size_t max,
	const char *name, s3_list_page_t *page, bool *url)
{
	int ret;

	memset(page, 0, sizeof(*page));
	if ((ret = bop__s3_xml_parse(root, data, len, max)) < 0)
		return ret;
	if (strcmp((*root)->name, name) != 0)
		return wrong_root(*root, name);
	*url = url_encoded(*root);
	page->truncated = is_true(bop__s3_xml_text(*root, "IsTruncated"));
	return 0;
}

int bop__s3_xml_list_objects(const char *data, size_t len, size_t max, s3_list_page_t *page,
	s3_list_entry_cb cb, void *payload)
{
	s3_xml_node_t *root = NULL;
	bool url;
	int ret;

	if ((ret = list_root(&root, data, len, max, "ListBucketResult", page, &url)) < 0 ||
			(ret = copy_opt(&page->next_token, bop__s3_xml_text(root, "NextContinuationToken"))) < 0)
		goto out;
	if (page->truncated && !page->next_token) {
		ret = bop__error(BOP_EFORMAT, "malformed S3 listing: truncated without <NextContinuationToken>");
		goto out;
	}
	for (s3_xml_node_t *c = root->child; c && ret == 0; c = c->next)
		if (strcmp(c->name, "Contents") == 0)
			ret = list_entry(c, url, cb, payload);
out:
	if (ret < 0)
		bop__s3_list_page_clear(page);
	bop__s3_xml_free(root);
	return ret;
}

static int upload_entry(const s3_xml_node_t *u, bool url, s3_upload_entry_cb cb, void *payload)
{
	const char *id = bop__s3_xml_text(u, "UploadId");
	char *key;
	int ret;

	if (!id || !*id)
		return bop__error(BOP_EFORMAT, "malformed S3 upload listing: an upload has no <UploadId>");
	key = entry_key(u, url);
	if (!key)
		return bop_error_last_code();
	ret = cb(key, id, bop__s3_parse_iso8601(bop__s3_xml_text(u, "Initiated")), payload);
	free(key);
	return ret;
}

int bop__s3_xml_list_uploads(const char *data, size_t len, size_t max, s3_list_page_t *page,
	s3_upload_entry_cb cb, void *payload)
{
	s3_xml_node_t *root = NULL;
	bool url;
	int ret;

	if ((ret = list_root(&root, data, len, max, "ListMultipartUploadsResult", page, &url)) < 0 ||
			(ret = copy_opt(&page->next_key_marker, bop__s3_xml_text(root, "NextKeyMarker"))) < 0 ||
			(ret = copy_opt(&page->next_upload_id_marker,
				bop__s3_xml_text(root, "NextUploadIdMarker"))) < 0)
		goto out;
	if (page->truncated && !page->next_key_marker) {
		ret = bop__error(BOP_EFORMAT, "malformed S3 upload listing: truncated without <NextKeyMarker>");
		goto out;
	}
	for (s3_xml_node_t *c = root->child; c && ret == 0; c = c->next)
		if (strcmp(c->name, "Upload") == 0)
			ret = upload_entry(c, url, cb, payload);
out:
	if (ret < 0)
		bop__s3_list_page_clear(page);
	bop__s3_xml_free(root);
	return ret;
}
