/* Arbitrary bytes as an S3 XML response body, read the ways the S3 backend reads one:
 * as a ListObjectsV2 page, a ListMultipartUploads page, and as a tree searched for an
 * <Error>, an <UploadId>, a completed upload's <ETag> or a DeleteObjects result. Every
 * answer is 0 or an error code with a message; a listing hands out only keys without a
 * NUL byte, and a truncated listing always says where to go on. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "storage/s3/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_object(const char *key, uint64_t size, int64_t mtime, void *payload)
{
	(void)size;
	(void)mtime;
	if (!key)
		abort();
	*(size_t *)payload += strlen(key) + 1;
	return 0;
}

static int on_upload(const char *key, const char *upload_id, int64_t initiated, void *payload)
{
	(void)initiated;
	if (!key || !upload_id || !*upload_id)
		abort();
	*(size_t *)payload += strlen(key) + 1;
	return 0;
}

static void check_ret(int ret)
{
	if (ret > 0 || (ret < 0 && !bop_error_last()))
		abort();
}

static void walk(const s3_xml_node_t *n, int depth)
{
	for (; n; n = n->next) {
		if (!n->name || !n->text || strlen(n->text) > n->text_len || depth > 64)
			abort();
		walk(n->child, depth + 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	s3_list_page_t page;
	s3_xml_node_t *root = NULL;
	s3_error_info_t info;
	size_t seen = 0;
	int ret;

	bop_log_set_level(BOP_LOG_OFF);
	ret = bop__s3_xml_list_objects(text, size, S3_XML_MAX, &page, on_object, &seen);
	check_ret(ret);
	if (ret == 0 && page.truncated && !page.next_token)
		abort();
	bop__s3_list_page_clear(&page);

	ret = bop__s3_xml_list_uploads(text, size, S3_XML_MAX, &page, on_upload, &seen);
	check_ret(ret);
	if (ret == 0 && page.truncated && !page.next_key_marker)
		abort();
	bop__s3_list_page_clear(&page);

	ret = bop__s3_xml_parse(&root, text, size, S3_ERROR_BODY_MAX);
	check_ret(ret);
	if ((ret == 0) != (root != NULL))
		abort();
	if (root) {
		const char *etag = bop__s3_xml_text(root, "ETag");

		walk(root, 0);
		if (bop__s3_xml_error(&info, root) == 0 && (!info.code || !*info.code))
			abort();
		(void)bop__s3_xml_text(root, "UploadId");
		if (etag && strrchr(etag, '-'))
			(void)atoi(strrchr(etag, '-') + 1);
		for (s3_xml_node_t *c = root->child; c; c = c->next)
			if (!strcmp(c->name, "Error"))
				(void)bop__s3_xml_text(c, "Key");
	}
	bop__s3_xml_free(root);
	return 0;
}
