/* Arbitrary bytes as the ClusterBackupTemplate a fixed BackupSchedule refers to (with vars
 * and a vars Secret): every answer is an error code or a handle, a valid one has its
 * objects, and the Secret's value never shows in a message (unless the template itself
 * holds that text). */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char storage[] =
	"{\"kind\":\"BackupStorage\",\"metadata\":{\"name\":\"st\"},\"spec\":{\"file\":"
	"{\"claimName\":\"c\"}}}";

static const char schedule[] =
	"{\"kind\":\"BackupSchedule\",\"metadata\":{\"name\":\"s\",\"namespace\":\"shop\"},"
	"\"spec\":{\"templateRef\":{\"name\":\"t\"},\"vars\":{\"host\":\"db; $(x)\",\"port\":5432,"
	"\"flag\":true,\"user\":\"{{ .host }}\"},\"varsSecretRef\":{\"name\":\"v\"},"
	"\"storage\":{\"name\":\"st\"}}}";

static const char *input;

static int lookup(char **object, const char *kind, const char *ns, const char *name, void *ud)
{
	(void)ud;
	(void)ns;
	(void)name;
	if (!strcmp(kind, "ClusterBackupTemplate"))
		*object = bop_strdup(input);
	else if (!strcmp(kind, "Secret"))
		/* password: "fz-secret-value" */
		*object = bop_strdup("{\"kind\":\"Secret\",\"data\":{\"password\":"
			"\"Znotc2VjcmV0LXZhbHVl\"}}");
	else
		return BOP_ENOTFOUND;
	return *object ? 0 : BOP_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_reconcile_options_t o = BOP_RECONCILE_OPTIONS_INIT;
	bop_reconcile_t *r = NULL;
	char *text = malloc(size + 1);
	int ret;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	input = text;
	bop_log_set_level(BOP_LOG_OFF);
	o.runner_namespace = "backupop-system";
	o.runner_image = "runner:1";
	o.lookup = lookup;
	ret = bop_reconcile_new(&r, &o, schedule, storage);
	if (ret == 0 && (!r || (bop_reconcile_valid(r) &&
	    !bop_reconcile_object(r, BOP_RECONCILE_SECRET)) ||
	    (!bop_reconcile_valid(r) && (!bop_reconcile_reason(r) ||
	     (strstr(bop_reconcile_message(r), "fz-secret-value") &&
	      !strstr(text, "fz-secret-value"))))))
		abort();
	if (ret != 0 && r)
		abort();
	bop_reconcile_free(r);
	free(text);
	return 0;
}
