#include "internal.h"

#include "backupop/version.h"

BOP_EXTERN(unsigned int) bop_version(void)
{
	return BOP_VERSION_NUMBER;
}

BOP_EXTERN(const char *) bop_version_string(void)
{
	return BOP_VERSION_STRING;
}
