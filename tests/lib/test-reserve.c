/* bop__reserve(): the one growable-array helper behind the HTTP response buffers of the
 * k8s client and S3, the informer's pages and entries, age's header buffers and the files
 * engine's tar output (issue 9 item 5: one piece of code per job). */
#include "internal.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char *s = NULL;
	uint64_t *v = NULL, *before;
	size_t cap = 0, vcap = 0;

	is_int(bop__reserve(&s, &cap, 10, 1, 512), 0, "an empty buffer gets room");
	is_int(cap, 512, "it starts at the first capacity given");
	ok(s != NULL, "and has memory");
	memset(s, 'x', 512);
	is_int(bop__reserve(&s, &cap, 512, 1, 512), 0, "enough room: nothing to do");
	is_int(cap, 512, "the capacity stays");
	is_int(bop__reserve(&s, &cap, 513, 1, 512), 0, "one byte more grows it");
	is_int(cap, 1024, "by doubling");
	ok(s[0] == 'x' && s[511] == 'x', "the contents are kept");
	is_int(bop__reserve(&s, &cap, 5000, 1, 512), 0, "a big step");
	is_int(cap, 8192, "doubles as often as needed (1024 -> 8192 for 5000)");

	is_int(bop__reserve(&v, &vcap, 3, sizeof(*v), 0), 0, "elements wider than a byte, no first");
	is_int(vcap, 4, "the capacity counts elements: from 1 doubled to 4");
	v[3] = 42;
	before = v;
	is_int(bop__reserve(&v, &vcap, SIZE_MAX / 4, sizeof(*v), 64), BOP_ENOMEM,
		"a size that would overflow is refused as out of memory");
	ok(v == before && vcap == 4 && v[3] == 42, "a refused request leaves the array as it was");
	free(s);
	free(v);
	return done_testing();
}
