#include "internal.h"

#include <stdio.h>

#include "backupop/version.h"

BOP_EXTERN(unsigned int) bop_version(void)
{
	return BOP_VERSION_NUMBER;
}

BOP_EXTERN(const char *) bop_version_string(void)
{
	return BOP_VERSION_STRING;
}

int bop__version_check(const char *what, const char *name, unsigned int version,
	unsigned int oldest, unsigned int newest)
{
	char range[64];

	if (version >= oldest && version <= newest)
		return 0;
	if (oldest == newest)
		snprintf(range, sizeof(range), "only version %u", newest);
	else
		snprintf(range, sizeof(range), "versions %u to %u", oldest, newest);
	return bop__error(BOP_EVERSION, "%s%s%s%s has version %u, but libbackupop %s understands "
		"%s: was it built against the headers of another release?", what, name ? " \"" : "",
		name ? name : "", name ? "\"" : "", version, BOP_VERSION_STRING, range);
}
