/*
 * The --config file (backupop-config(5)). The format is shared with backupop-runner and
 * loaded by runner/common into the settings model both use.
 */
#include "cli.h"

#include <stdlib.h>

int cli_config_load(cli_settings_t *s, const char *path)
{
	char *error = NULL;
	int ret;

	ret = rcfg_load(s, path, &error);
	if (!ret)
		ret = rcfg_finish(s, &error);
	if (ret) {
		cli_error(0, "%s", error ? error : "out of memory");
		free(error);
		return ret == RCFG_EINVALID ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
	}
	return 0;
}
