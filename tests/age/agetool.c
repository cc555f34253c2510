/*
 * A tiny age front end over the public API, for the interop tests with the real `age`:
 *
 *   agetool encrypt [-r RECIPIENT]... [-R RECIPIENTS-FILE]... [-i IDENTITY-FILE]...
 *                   [-p-file PASSPHRASE-FILE] [-w LOG2N]      < plain > cipher
 *   agetool decrypt [-i IDENTITY-FILE]... [-p-file PASSPHRASE-FILE] [-w LOG2N]
 *                                                             < cipher > plain
 *   agetool keygen                        identity file on stdout
 *   agetool recipient IDENTITY-FILE       its "age1..." recipient on stdout
 *
 * Exit status: 0 ok, 1 error, 2 usage, 3 no matching key (BOP_ENOKEY),
 * 4 integrity (BOP_EINTEGRITY), 5 format (BOP_EFORMAT).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <backupop.h>

#define BUF_SIZE (256 * 1024)

static int exit_code(int rc)
{
	switch (rc) {
	case BOP_ENOKEY:
		return 3;
	case BOP_EINTEGRITY:
		return 4;
	case BOP_EFORMAT:
		return 5;
	default:
		return 1;
	}
}

static int fail(int rc)
{
	fprintf(stderr, "agetool: %s (%s)\n", bop_error_last(), bop_strerror(rc));
	return exit_code(rc);
}

static int usage(void)
{
	fprintf(stderr, "usage: agetool encrypt|decrypt [-r R] [-R FILE] [-i FILE] [-p-file FILE] "
		"[-w N] | keygen | recipient FILE\n");
	return 2;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			fprintf(stderr, "agetool: write: %s\n", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* stdin → stage → stdout, following the stream contract. */
static int pump(bop_stage_t *st)
{
	static unsigned char inbuf[BUF_SIZE], outbuf[BUF_SIZE];
	int rc = 0;

	for (;;) {
		ssize_t r = read(0, inbuf, sizeof(inbuf));
		bop_stream_directive_t dir = r == 0 ? BOP_STREAM_END : BOP_STREAM_CONTINUE;
		bop_inbuf_t in = { inbuf, r > 0 ? (size_t)r : 0, 0 };

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "agetool: read: %s\n", strerror(errno));
			return 1;
		}
		do {
			bop_outbuf_t out = { outbuf, sizeof(outbuf), 0 };

			rc = bop_stage_process(st, &out, &in, dir);
			/* On failure nothing unauthenticated is in out[0..pos). */
			if (write_all(1, outbuf, out.pos) < 0)
				return 1;
			if (rc < 0)
				return fail(rc);
		} while (rc == 1);
		if (dir == BOP_STREAM_END)
			return 0;
	}
}

static int add_key_arg(bop_keys_t *keys, const char *flag, const char *value)
{
	if (strcmp(flag, "-r") == 0)
		return bop_keys_add_recipient(keys, value);
	if (strcmp(flag, "-R") == 0)
		return bop_keys_add_recipients_file(keys, value);
	if (strcmp(flag, "-i") == 0)
		return bop_keys_add_identity_file(keys, value);
	if (strcmp(flag, "-p-file") == 0)
		return bop_keys_set_passphrase_file(keys, value);
	if (strcmp(flag, "-w") == 0)
		return bop_keys_set_scrypt_work_factor(keys, (unsigned int)atoi(value));
	return BOP_EINVAL;
}

static int crypt_main(int argc, char **argv, bool encrypt)
{
	bop_keys_t *keys = NULL;
	bop_stage_t *st = NULL;
	int rc;

	if (bop_keys_new(&keys) < 0)
		return 1;
	for (int i = 2; i < argc; i += 2) {
		if (i + 1 >= argc) {
			bop_keys_free(keys);
			return usage();
		}
		rc = add_key_arg(keys, argv[i], argv[i + 1]);
		if (rc < 0) {
			bop_keys_free(keys);
			return fail(rc);
		}
	}
	rc = encrypt ? bop_stage_age_encrypt_new(&st, keys) : bop_stage_age_decrypt_new(&st, keys);
	bop_keys_free(keys);
	if (rc < 0)
		return fail(rc);
	rc = pump(st);
	bop_stage_free(st);
	return rc;
}

int main(int argc, char **argv)
{
	char *a = NULL, *b = NULL;
	int rc;

	if (argc >= 2 && strcmp(argv[1], "encrypt") == 0)
		return crypt_main(argc, argv, true);
	if (argc >= 2 && strcmp(argv[1], "decrypt") == 0)
		return crypt_main(argc, argv, false);
	if (argc == 2 && strcmp(argv[1], "keygen") == 0) {
		rc = bop_age_keygen(&a, &b);
		if (rc < 0)
			return fail(rc);
		fputs(a, stdout);
		bop_free(a);
		bop_free(b);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "recipient") == 0) {
		FILE *f = fopen(argv[2], "r");
		char line[512];

		if (!f) {
			fprintf(stderr, "agetool: %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0] == '\0' || line[0] == '#')
				continue;
			rc = bop_age_identity_to_recipient(&a, line);
			if (rc < 0) {
				fclose(f);
				return fail(rc);
			}
			printf("%s\n", a);
			bop_free(a);
			a = NULL;
		}
		fclose(f);
		return 0;
	}
	return usage();
}
