/*
 * Writes N bytes of deterministic SQL-dump-like text to stdout (a pg_dump COPY block of an
 * orders table), for benchmarks that need realistic, compressible input quickly:
 *   gen-sql BYTES [SEED]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;

static uint64_t next(void)
{
	/* xorshift64*: fast and good enough to vary the rows. */
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return state * 2685821657736338717ULL;
}

static const char *const statuses[] = { "pending", "paid", "shipped", "delivered", "refunded" };
static const char *const cities[] = { "Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi",
	"Santiago", "Oslo", "Hanoi" };

int main(int argc, char **argv)
{
	unsigned long long want, written = 0, id = 1;
	static char buf[1 << 16];
	size_t used = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: gen-sql BYTES [SEED]\n");
		return 2;
	}
	want = strtoull(argv[1], NULL, 10);
	state = argc > 2 ? strtoull(argv[2], NULL, 10) | 1 : 0x9e3779b97f4a7c15ULL;
	used = (size_t)snprintf(buf, sizeof(buf), "COPY public.orders (id, customer_id, status, "
		"city, amount, note, created_at) FROM stdin;\n");
	while (written + used < want) {
		uint64_t r = next();
		char note[24];

		for (int i = 0; i < 16; i++)
			note[i] = (char)('a' + (next() % 26));
		note[16] = '\0';
		used += (size_t)snprintf(buf + used, sizeof(buf) - used,
			"%llu\t%llu\t%s\t%s\t%llu.%02llu\t%s\t2026-%02llu-%02llu %02llu:%02llu:%02llu+00\n",
			id++, (unsigned long long)(r % 250000), statuses[r % 5], cities[(r >> 8) % 8],
			(unsigned long long)((r >> 16) % 5000), (unsigned long long)((r >> 32) % 100), note,
			(unsigned long long)(1 + (r >> 40) % 12), (unsigned long long)(1 + (r >> 44) % 28),
			(unsigned long long)((r >> 49) % 24), (unsigned long long)((r >> 54) % 60),
			(unsigned long long)((r >> 58) % 60));
		if (used > sizeof(buf) - 256) {
			fwrite(buf, 1, used, stdout);
			written += used;
			used = 0;
		}
	}
	if (want > written) {
		size_t rest = (size_t)(want - written);
		fwrite(buf, 1, rest < used ? rest : used, stdout);
	}
	return ferror(stdout) ? 1 : 0;
}
