/* A restore target never sees the end of a stream that fails its final checks: with no
 * compression and no encryption only the manifest's SHA-256, known at the very end,
 * detects a changed last byte — by then the target must still be waiting for its tail. */
#include "catalog-test.h"

#include <fcntl.h>

typedef struct target {
	size_t received;
	int committed;
} target_t;

static int receive(const void *buf, size_t len, void *payload)
{
	BOP_UNUSED(buf);
	((target_t *)payload)->received += len;
	return 0;
}

int main(void)
{
	enum { SIZE = 3 << 20 };
	char *dir = make_tmpdir();
	char *url = bop__sprintf("file://%s/store", dir), *path = NULL;
	unsigned char *data = malloc(SIZE);
	bop_backup_options_t opts = BOP_BACKUP_OPTIONS_INIT;
	bop_storage_t *storage = NULL;
	bop_catalog_t *catalog = NULL;
	bop_manifest_t *m = NULL;
	bop_source_t *src = NULL;
	bop_sink_t *sink = NULL;
	target_t target = { 0, 0 };
	int fd;

	for (size_t i = 0; i < SIZE; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	opts.compression = BOP_COMPRESSION_NONE;
	bop_storage_open(&storage, url, NULL);
	bop_catalog_open(&catalog, storage, "tail");
	bop_source_memory_new(&src, data, SIZE);
	is_int(bop_catalog_backup(catalog, &m, src, &opts), 0, "an uncompressed, unencrypted backup");
	path = bop__sprintf("%s/store/%s", dir, bop_manifest_object_key(m));
	fd = open(path, O_RDWR);
	ok(fd >= 0 && pwrite(fd, "\x5a", 1, SIZE - 1) == 1, "its last stored byte is changed");
	close(fd);
	bop_sink_callback_new(&sink, receive, &target);
	is_int(bop_catalog_restore(catalog, m, sink, NULL), BOP_EINTEGRITY,
		"the restore fails its SHA-256 check");
	ok(target.received <= SIZE - (256u << 10),
		"the target never received the stream's tail (%zu of %d bytes)", target.received, SIZE);
	bop_manifest_free(m);
	bop_catalog_free(catalog);
	bop_storage_free(storage);
	free(data);
	free(path);
	free(url);
	remove_tree(dir);
	return done_testing();
}
