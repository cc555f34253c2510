/*
 * spec.encryption.generateIdentity {secretName}: the age identity of a schedule, made by
 * the controller into Secret <secretName> of the schedule's namespace when that Secret is
 * missing, and never written again. The Secret has no owner reference, so it outlives the
 * schedule: it is the only key to the schedule's backups (backupop-controller(8)).
 * An existing Secret of that name is never replaced, whatever it holds; the reconcile
 * reports one without a usable identity as IdentitySecretInvalid.
 */
#include "ctl.h"

#include <stdio.h>
#include <string.h>

/* The Secret as created: the generated identity and its recipient in stringData (the API
 * server stores them base64-encoded in data). */
static json_object *new_secret(const char *ns, const char *name, const char *sched_key,
	const char *identity, const char *recipient)
{
	json_object *labels = json_object_new_object(), *ann = json_object_new_object();
	json_object *data = json_object_new_object(), *o;

	/* not managed-by: nothing of the controller's may ever delete or rewrite it */
	json_object_object_add(labels, "app.kubernetes.io/created-by",
		json_object_new_string(CTL_FIELD_MANAGER));
	json_object_object_add(ann, "backupop.io/generated-for", json_object_new_string(sched_key));
	json_object_object_add(ann, "backupop.io/note", json_object_new_string(
		"The age identity of the backups of this BackupSchedule. It is kept when the "
		"schedule is deleted: without it those backups cannot be decrypted. Keep a copy "
		"outside the cluster."));
	o = ctl_object_head("v1", "Secret", ns, name, labels, ann);
	json_object_object_add(o, "type", json_object_new_string("Opaque"));
	json_object_object_add(data, BOP_RECONCILE_GENERATED_IDENTITY_KEY,
		json_object_new_string(identity));
	json_object_object_add(data, BOP_RECONCILE_GENERATED_RECIPIENT_KEY,
		json_object_new_string(recipient));
	json_object_object_add(o, "stringData", data);
	return o;
}

static void wipe_free(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		bop_free(s);
	}
}

/* Creates the Secret; *created is the object the API server returned. */
static int create(ctl_t *c, int w, json_object *sched, const char *ns, const char *name,
	char **created)
{
	char path[400], *identity = NULL, *recipient = NULL, *text = NULL, sched_key[512];
	json_object *o = NULL;
	int ret;

	snprintf(sched_key, sizeof(sched_key), "%s/%s", ns, js(sched, "metadata.name"));
	ret = bop_age_keygen(&identity, &recipient);
	if (ret)
		goto out;
	o = new_secret(ns, name, sched_key, identity, recipient);
	text = bop_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	if (!text) {
		ret = BOP_ENOMEM;
		goto out;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets", ns);
	ret = bop_k8s_request(c->wclient[w], NULL, created, BOP_K8S_CREATE, path, text, NULL);
	if (ret == 0) {
		char msg[400];

		ctl_count_write(c, "Secret");
		clog_(BOP_LOG_INFO, "schedule %s: created Secret %s/%s with a new age identity "
			"(recipient %s)", sched_key, ns, name, recipient);
		snprintf(msg, sizeof(msg), "created Secret %s with a new age identity (recipient %s); "
			"it stays when the schedule is deleted", name, recipient);
		bop_k8s_event(c->recorder, json_object_to_json_string(sched), "Normal",
			"IdentityGenerated", msg);
	}
out:
	json_object_put(o);
	wipe_free(text);
	wipe_free(identity);
	bop_free(recipient);
	return ret;
}

int ctl_identity_ensure(ctl_t *c, int w, json_object *sched, char **secret)
{
	const char *name = js(sched, "spec.encryption.generateIdentity.secretName");
	const char *ns = js(sched, "metadata.namespace");
	char key[512], path[600], *cached = NULL;
	int ret;

	*secret = NULL;
	if (!name || !*name || strchr(name, '/') || !ns)
		return 0;       /* nothing to make; the reconcile says what is wrong */
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	if (bop_k8s_informer_get(c->secrets, &cached, key) == 0) {
		bop_free(cached);
		return 0;
	}
	/* the cache may lag behind a Secret made a moment ago (by us or anyone): ask */
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets/%s", ns, name);
	ret = bop_k8s_request(c->wclient[w], NULL, secret, BOP_K8S_GET, path, NULL, NULL);
	if (ret != BOP_ENOTFOUND)
		return ret;
	wipe_free(*secret);
	*secret = NULL;
	ret = create(c, w, sched, ns, name, secret);
	if (ret == BOP_ECONFLICT || ret == BOP_EEXISTS) {
		/* made meanwhile by someone else: theirs it is */
		wipe_free(*secret);
		*secret = NULL;
		ret = bop_k8s_request(c->wclient[w], NULL, secret, BOP_K8S_GET, path, NULL, NULL);
	}
	if (ret) {
		wipe_free(*secret);
		*secret = NULL;
	}
	return ret;
}

char *ctl_identity_recipient(const char *secret)
{
	char *text = NULL, *line, *save = NULL, *recipient = NULL;
	size_t len = 0;

	if (!secret || bop_reconcile_secret_value(&text, &len, secret,
	    BOP_RECONCILE_GENERATED_IDENTITY_KEY) < 0)
		return NULL;
	for (line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (!strncmp(line, "AGE-SECRET-KEY-1", 16) &&
		    bop_age_identity_to_recipient(&recipient, line) == 0)
			break;
	}
	memset(text, 0, len);
	bop_free(text);
	return recipient;
}
