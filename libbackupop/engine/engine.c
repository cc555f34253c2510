/* Engines: the name registry and the checks around the engine vtable. */
#include "engine/config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct engine_entry {
	struct engine_entry *next;
	char *name;
	unsigned int capabilities;
	bop_engine_open_fn open;
	void *payload;
} engine_entry_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;
static engine_entry_t *engines;

/* Letters, digits, '-', '_' and '.', as in a config file key. */
static bool engine_name_valid(const char *name)
{
	if (!*name)
		return false;
	for (const char *p = name; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static engine_entry_t *find_locked(const char *name)
{
	for (engine_entry_t *e = engines; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static int register_engine(const char *name, unsigned int capabilities, bop_engine_open_fn open,
	void *payload)
{
	engine_entry_t *e;
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	if (find_locked(name)) {
		ret = bop__error(BOP_EEXISTS, "engine \"%s\" is already registered", name);
		goto out;
	}
	e = bop__calloc(1, sizeof(*e));
	if (!e) {
		ret = BOP_ENOMEM;
		goto out;
	}
	e->name = bop__strdup(name);
	if (!e->name) {
		free(e);
		ret = BOP_ENOMEM;
		goto out;
	}
	e->capabilities = capabilities;
	e->open = open;
	e->payload = payload;
	e->next = engines;
	engines = e;
out:
	pthread_mutex_unlock(&registry_lock);
	return ret;
}

static void register_builtins(void)
{
	static const struct {
		const char *name;
		const bop__engine_kind_t *kind;
	} builtins[] = {
		{ "cockroach", &bop__engine_cockroach_kind },
		{ "exec", &bop__engine_exec_kind },
		{ "files", &bop__engine_files_kind },
		{ "mysql", &bop__engine_mysql_kind },
		{ "postgres", &bop__engine_postgres_kind },
	};

	/* The payload is only ever read. */
	for (size_t i = 0; i < BOP_ARRAY_SIZE(builtins); i++)
		register_engine(builtins[i].name, builtins[i].kind->capabilities,
			bop__engine_kind_open, (void *)builtins[i].kind);
}

static void ensure_builtins(void)
{
	pthread_once(&builtins_once, register_builtins);
}

BOP_EXTERN(int) bop_engine_register(const char *name, unsigned int capabilities,
	bop_engine_open_fn open, void *payload)
{
	if (!name || !open)
		return bop__error(BOP_EINVAL, "bop_engine_register: name and open function are required");
	if (!engine_name_valid(name))
		return bop__error(BOP_EINVAL, "\"%s\" is not a valid engine name (letters, digits, '-', '_', '.')",
			name);
	ensure_builtins();
	return register_engine(name, capabilities, open, payload);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The matching names, sorted, in one block: the pointers, then the strings. */
static char **names_block_locked(unsigned int capabilities)
{
	size_t n = 0, bytes = 0;
	char **v, *p;

	for (engine_entry_t *e = engines; e; e = e->next) {
		if ((e->capabilities & capabilities) != capabilities)
			continue;
		n++;
		bytes += strlen(e->name) + 1;
	}
	v = bop__calloc(1, (n + 1) * sizeof(*v) + bytes);
	if (!v)
		return NULL;
	p = (char *)(v + n + 1);
	n = 0;
	for (engine_entry_t *e = engines; e; e = e->next) {
		if ((e->capabilities & capabilities) != capabilities)
			continue;
		v[n++] = strcpy(p, e->name);
		p += strlen(p) + 1;
	}
	qsort(v, n, sizeof(*v), name_cmp);
	return v;
}

/* "cockroach, exec, postgres" for messages; NULL when out of memory. */
static char *known_engines_locked(void)
{
	char **names = names_block_locked(0), *list = names ? bop__strdup("") : NULL, *next;

	for (size_t i = 0; list && names[i]; i++) {
		next = bop__sprintf("%s%s%s", list, i ? ", " : "", names[i]);
		free(list);
		list = next;
	}
	free(names);
	return list;
}

static int lookup(const char *name, bop_engine_open_fn *open, void **payload,
	unsigned int *capabilities)
{
	engine_entry_t *e;
	char *known = NULL;
	int ret = 0;

	pthread_mutex_lock(&registry_lock);
	e = find_locked(name);
	if (e) {
		*open = e->open;
		*payload = e->payload;
		*capabilities = e->capabilities;
	} else {
		known = known_engines_locked();
	}
	pthread_mutex_unlock(&registry_lock);
	if (!e) {
		ret = known ? bop__error(BOP_ENOTFOUND, "unknown engine \"%s\"; known engines: %s", name, known)
			: BOP_ENOMEM;
		free(known);
	}
	return ret;
}

/* A failed engine call that left no message (third-party engines cannot set one). */
static int engine_failed(int ret, const char *what)
{
	if (ret < 0 && bop_error_last_code() == BOP_OK)
		bop__error(ret, "%s: %s", what, bop_strerror(ret));
	return ret;
}

BOP_EXTERN(int) bop_engine_open(bop_engine_t **out, const char *name, const char *config_json)
{
	bop_engine_open_fn open = NULL;
	void *payload = NULL;
	unsigned int capabilities;
	int ret;

	if (!out || !name)
		return bop__error(BOP_EINVAL, "bop_engine_open: an engine name is required");
	*out = NULL;
	ensure_builtins();
	if ((ret = lookup(name, &open, &payload, &capabilities)) < 0)
		return ret;
	bop_error_clear();
	ret = open(out, config_json ? config_json : "{}", payload);
	if (ret < 0) {
		*out = NULL;
		if (bop_error_last_code() == BOP_OK)
			return bop__error(ret, "engine %s: %s", name, bop_strerror(ret));
		bop__error_wrap("engine %s", name);
		return ret;
	}
	if (!*out)
		return bop__error(BOP_ERROR, "engine %s returned no engine", name);
	if (BOP__VERSION_CHECK("engine", name, (*out)->version, ENGINE_VERSION) < 0) {
		/* Its layout is unknown, so it cannot be freed safely: leak it. */
		*out = NULL;
		return BOP_EVERSION;
	}
	return 0;
}

BOP_EXTERN(void) bop_engine_free(bop_engine_t *engine)
{
	if (engine && BOP__VERSION_OK(engine->version, ENGINE_VERSION) && engine->free)
		engine->free(engine);
}

static int check_engine(const bop_engine_t *engine, const char *fn)
{
	if (!engine)
		return bop__error(BOP_EINVAL, "%s: NULL engine", fn);
	if (BOP__VERSION_CHECK("the engine", NULL, engine->version, ENGINE_VERSION) < 0)
		return BOP_EVERSION;
	return 0;
}

BOP_EXTERN(int) bop_engine_validate(bop_engine_t *engine)
{
	int ret;

	if ((ret = check_engine(engine, "bop_engine_validate")) < 0)
		return ret;
	if (!engine->validate)
		return 0;
	bop_error_clear();
	return engine_failed(engine->validate(engine), "the engine configuration is not usable");
}

BOP_EXTERN(int) bop_engine_backup(bop_engine_t *engine, bop_source_t **out)
{
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_engine_backup: NULL out");
	*out = NULL;
	if ((ret = check_engine(engine, "bop_engine_backup")) < 0)
		return ret;
	bop_error_clear();
	ret = engine->backup(engine, out);
	if (ret < 0) {
		*out = NULL;
		return engine_failed(ret, "cannot start the backup");
	}
	if (!*out)
		return bop__error(BOP_ERROR, "the engine returned no backup stream");
	return 0;
}

BOP_EXTERN(int) bop_engine_restore(bop_engine_t *engine, bop_sink_t **out)
{
	int ret;

	if (!out)
		return bop__error(BOP_EINVAL, "bop_engine_restore: NULL out");
	*out = NULL;
	if ((ret = check_engine(engine, "bop_engine_restore")) < 0)
		return ret;
	bop_error_clear();
	ret = engine->restore(engine, out);
	if (ret < 0) {
		*out = NULL;
		return engine_failed(ret, "cannot start the restore");
	}
	if (!*out)
		return bop__error(BOP_ERROR, "the engine returned no restore target");
	return 0;
}

BOP_EXTERN(int) bop_engine_pod_customize(bop_engine_t *engine, char **patch_json)
{
	int ret;

	if (!patch_json)
		return bop__error(BOP_EINVAL, "bop_engine_pod_customize: NULL patch_json");
	*patch_json = NULL;
	if ((ret = check_engine(engine, "bop_engine_pod_customize")) < 0)
		return ret;
	if (!engine->pod_customize) {
		*patch_json = bop__strdup("{}");
		return *patch_json ? 0 : BOP_ENOMEM;
	}
	bop_error_clear();
	ret = engine->pod_customize(engine, patch_json);
	if (ret < 0) {
		*patch_json = NULL;
		return engine_failed(ret, "cannot compute the engine's pod changes");
	}
	if (!*patch_json)
		return bop__error(BOP_ERROR, "the engine returned no pod changes");
	return 0;
}

BOP_EXTERN(int) bop_engine_capabilities(unsigned int *out, const char *name)
{
	bop_engine_open_fn open;
	void *payload;
	int ret;

	if (!out || !name)
		return bop__error(BOP_EINVAL, "bop_engine_capabilities: an engine name is required");
	*out = 0;
	ensure_builtins();
	ret = lookup(name, &open, &payload, out);
	if (ret < 0)
		*out = 0;
	return ret;
}

BOP_EXTERN(int) bop_engine_names(char ***out, unsigned int capabilities)
{
	if (!out)
		return bop__error(BOP_EINVAL, "bop_engine_names: NULL out");
	ensure_builtins();
	pthread_mutex_lock(&registry_lock);
	*out = names_block_locked(capabilities);
	pthread_mutex_unlock(&registry_lock);
	return *out ? 0 : bop__error_oom();
}

char *bop__engine_names_text(unsigned int capabilities, const char *last_separator)
{
	char **names = NULL, *text, *next;

	if (bop_engine_names(&names, capabilities) < 0)
		return NULL;
	text = bop__strdup("");
	for (size_t i = 0; text && names[i]; i++) {
		next = bop__sprintf("%s%s%s", text, !i ? "" : names[i + 1] ? ", " : last_separator,
			names[i]);
		free(text);
		text = next;
	}
	free(names);
	return text;
}

BOP_EXTERN(int) bop_engine_count_rows(bop_engine_t *engine, int64_t *tables, int64_t *rows)
{
	int ret;

	if ((ret = check_engine(engine, "bop_engine_count_rows")) < 0)
		return ret;
	if (!tables != !rows)
		return bop__error(BOP_EINVAL, "bop_engine_count_rows: give both tables and rows, or neither");
	if (tables) {
		*tables = -1;
		*rows = -1;
	}
	if (!engine->count_rows)
		return bop__error(BOP_ENOTSUPPORTED, "this engine cannot count the rows of its database");
	bop_error_clear();
	ret = engine_failed(engine->count_rows(engine, tables, rows), "cannot count the rows");
	if (ret == 0 && tables && (*tables < 0 || *rows < 0))
		ret = bop__error(BOP_ERROR, "the engine returned no row count");
	if (ret < 0 && tables) {
		*tables = -1;
		*rows = -1;
	}
	return ret;
}

BOP_EXTERN(int) bop_engine_warnings(bop_engine_t *engine, bop_engine_warning_cb cb,
	void *payload)
{
	int ret;

	if (!cb)
		return bop__error(BOP_EINVAL, "bop_engine_warnings: NULL callback");
	if ((ret = check_engine(engine, "bop_engine_warnings")) < 0)
		return ret;
	if (!engine->warnings)
		return 0;
	bop_error_clear();
	return engine_failed(engine->warnings(engine, cb, payload), "cannot check the engine's configuration");
}
