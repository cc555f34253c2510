/* Arbitrary bytes as a BackupSchedule (against a fixed BackupStorage and Secrets), and as
 * an object whose status conditions are set: every answer is an error code or a handle,
 * and a valid handle has its three objects. */
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char storage[] =
	"{\"kind\":\"BackupStorage\",\"metadata\":{\"name\":\"minio\"},\"spec\":{\"s3\":"
	"{\"bucket\":\"b\",\"prefix\":\"p\"},\"credentialsSecretRef\":{\"namespace\":\"sys\","
	"\"name\":\"creds\"},\"allowedNamespaces\":{\"from\":\"Selector\",\"selector\":"
	"{\"matchLabels\":{\"team\":\"a\"}}}}}";

static int lookup(char **object, const char *kind, const char *ns, const char *name, void *ud)
{
	(void)ud;
	(void)ns;
	(void)name;
	if (!strcmp(kind, "Namespace"))
		*object = bop_strdup("{\"metadata\":{\"name\":\"shop\",\"labels\":{\"team\":\"a\"}}}");
	else
		*object = bop_strdup("{\"kind\":\"Secret\",\"data\":{\"password\":\"c2VjcmV0LXB3\","
			"\"accessKeyId\":\"QUtJQUVYQU1QTEU=\",\"secretAccessKey\":\"c2VjcmV0LWtleQ==\"}}");
	return *object ? 0 : BOP_ENOMEM;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bop_reconcile_options_t o = BOP_RECONCILE_OPTIONS_INIT;
	bop_reconcile_condition_t c = { "Ready", "True", "RunnerReady", "ok" };
	bop_reconcile_t *r = NULL;
	char *text = malloc(size + 1), *conds = NULL;
	int ret;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	bop_log_set_level(BOP_LOG_OFF);
	o.runner_namespace = "backupop-system";
	o.runner_image = "runner:1";
	o.api_token = "0123456789abcdef";
	o.lookup = lookup;
	ret = bop_reconcile_new(&r, &o, text, storage);
	if (ret == 0 && (!r || (bop_reconcile_valid(r) &&
	    (!bop_reconcile_object(r, BOP_RECONCILE_SECRET) ||
	     !bop_reconcile_object(r, BOP_RECONCILE_STATEFULSET) ||
	     !bop_reconcile_object(r, BOP_RECONCILE_SERVICE))) ||
	    (!bop_reconcile_valid(r) && !bop_reconcile_reason(r))))
		abort();
	if (ret != 0 && r)
		abort();
	bop_reconcile_free(r);
	if (bop_reconcile_condition_set(&conds, NULL, text, &c, 1700000000) == 0 && !conds)
		abort();
	bop_free(conds);
	free(text);
	return 0;
}
