/* The part of the public C API the Python module binds, in the form cffi's cdef() reads
 * (no macros, no attributes). In API mode the generated C includes the real headers, so
 * the compiler checks every declaration here against them. */

/* common.h, errors.h */
unsigned int bop_version(void);
const char *bop_version_string(void);
void bop_free(void *ptr);

typedef enum bop_error {
	BOP_OK = 0,
	BOP_ERROR = -1,
	BOP_ENOTFOUND = -2,
	BOP_EEXISTS = -3,
	BOP_EINVAL = -4,
	BOP_EVERSION = -5,
	BOP_ENOMEM = -6,
	BOP_EIO = -7,
	BOP_EAUTH = -8,
	BOP_EINTEGRITY = -9,
	BOP_ETIMEOUT = -10,
	BOP_ECANCELED = -11,
	BOP_ECONFLICT = -12,
	BOP_ECHILD = -13,
	BOP_ENOTSUPPORTED = -14,
	BOP_EFORMAT = -15,
	BOP_ENOKEY = -16,
	BOP_ECONNECT = -17,
	...
} bop_error_t;

const char *bop_error_last(void);
int bop_error_last_code(void);
void bop_error_clear(void);
int bop_error_set(int code, const char *message);
const char *bop_strerror(int code);

/* age.h */
typedef struct bop_keys bop_keys_t;
int bop_keys_new(bop_keys_t **out);
void bop_keys_free(bop_keys_t *keys);
int bop_keys_add_recipient(bop_keys_t *keys, const char *recipient);
int bop_keys_add_recipients_file(bop_keys_t *keys, const char *path);
int bop_keys_add_identity(bop_keys_t *keys, const char *identity);
int bop_keys_add_identity_file(bop_keys_t *keys, const char *path);
int bop_keys_set_passphrase(bop_keys_t *keys, const char *passphrase, size_t len);
int bop_keys_set_scrypt_work_factor(bop_keys_t *keys, unsigned int log2_n);
size_t bop_keys_recipient_count(const bop_keys_t *keys);
int bop_age_keygen(char **identity, char **recipient);
int bop_age_identity_to_recipient(char **recipient, const char *identity);

/* io.h */
typedef struct bop_source bop_source_t;
typedef struct bop_sink bop_sink_t;

typedef struct bop_command_options {
	unsigned int version;
	const char *const *argv;
	const char *const *env;
	int inherit_env;
	int shell;
	const char *cwd;
	int64_t timeout_ms;
} bop_command_options_t;
#define BOP_COMMAND_OPTIONS_VERSION ...
int bop_command_options_init(bop_command_options_t *opts, unsigned int version);

int bop_source_fd_new(bop_source_t **out, int fd, int close_fd);
int bop_source_file_new(bop_source_t **out, const char *path);
int bop_source_memory_new(bop_source_t **out, const void *data, size_t len);
int bop_source_command_new(bop_source_t **out, const bop_command_options_t *opts);
typedef int (*bop_read_cb)(void *buf, size_t cap, size_t *got, void *payload);
int bop_source_callback_new(bop_source_t **out, bop_read_cb read, void *payload);
int bop_source_read(bop_source_t *src, void *buf, size_t cap, size_t *got);
int bop_source_close(bop_source_t *src);
void bop_source_free(bop_source_t *src);

int bop_sink_fd_new(bop_sink_t **out, int fd, int close_fd);
int bop_sink_file_new(bop_sink_t **out, const char *path);
int bop_sink_command_new(bop_sink_t **out, const bop_command_options_t *opts);
typedef int (*bop_write_cb)(const void *buf, size_t len, void *payload);
int bop_sink_callback_new(bop_sink_t **out, bop_write_cb write, void *payload);
int bop_sink_write(bop_sink_t *sink, const void *buf, size_t len);
int bop_sink_commit(bop_sink_t *sink);
void bop_sink_abort(bop_sink_t *sink);
void bop_sink_free(bop_sink_t *sink);

/* storage.h */
typedef struct bop_storage bop_storage_t;
typedef struct bop_storage_options {
	unsigned int version;
	const char *const *settings;
} bop_storage_options_t;
#define BOP_STORAGE_OPTIONS_VERSION ...
int bop_storage_options_init(bop_storage_options_t *opts, unsigned int version);

typedef struct bop_storage_stat {
	unsigned int version;
	uint64_t size;
	int64_t mtime;
} bop_storage_stat_t;
#define BOP_STORAGE_STAT_VERSION ...

typedef struct bop_put_options {
	unsigned int version;
	uint64_t size_hint;
	int exclusive;
} bop_put_options_t;
#define BOP_PUT_OPTIONS_VERSION ...

int bop_storage_open(bop_storage_t **out, const char *url, const bop_storage_options_t *opts);
void bop_storage_free(bop_storage_t *storage);
int bop_storage_put(bop_storage_t *storage, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts);
int bop_storage_get(bop_storage_t *storage, bop_source_t **out, const char *key,
	uint64_t offset);
int bop_storage_stat(bop_storage_t *storage, bop_storage_stat_t *st, const char *key);
typedef int (*bop_storage_list_cb)(const char *key, const bop_storage_stat_t *st,
	void *payload);
int bop_storage_list(bop_storage_t *storage, const char *prefix, bop_storage_list_cb cb,
	void *payload);
int bop_storage_remove(bop_storage_t *storage, const char *key);
int bop_storage_remove_many(bop_storage_t *storage, const char *const *keys, size_t n);

/* compress.h, pipeline.h */
typedef enum bop_compression {
	BOP_COMPRESSION_NONE = 0,
	BOP_COMPRESSION_ZSTD = 1,
	BOP_COMPRESSION_GZIP = 2,
	...
} bop_compression_t;
int bop_compression_parse(bop_compression_t *out, const char *name);
const char *bop_compression_name(bop_compression_t algorithm);
typedef void (*bop_progress_cb)(uint64_t bytes_in, uint64_t bytes_out, void *payload);

/* catalog.h */
typedef struct bop_catalog bop_catalog_t;
typedef struct bop_manifest bop_manifest_t;
typedef struct bop_manifest_list bop_manifest_list_t;

int bop_catalog_open(bop_catalog_t **out, bop_storage_t *storage, const char *name);
void bop_catalog_free(bop_catalog_t *catalog);
int bop_catalog_list(bop_catalog_t *catalog, bop_manifest_list_t **out);
size_t bop_manifest_list_count(const bop_manifest_list_t *list);
const bop_manifest_t *bop_manifest_list_get(const bop_manifest_list_t *list, size_t i);
void bop_manifest_list_free(bop_manifest_list_t *list);
int bop_catalog_get(bop_catalog_t *catalog, bop_manifest_t **out, const char *id);
int bop_manifest_parse(bop_manifest_t **out, const char *json, size_t len);
int bop_manifest_to_json(const bop_manifest_t *m, char **json);
void bop_manifest_free(bop_manifest_t *m);
const char *bop_manifest_id(const bop_manifest_t *m);
const char *bop_manifest_name(const bop_manifest_t *m);
const char *bop_manifest_engine(const bop_manifest_t *m);
int64_t bop_manifest_start_time(const bop_manifest_t *m);
int64_t bop_manifest_end_time(const bop_manifest_t *m);
uint64_t bop_manifest_plain_bytes(const bop_manifest_t *m);
uint64_t bop_manifest_stored_bytes(const bop_manifest_t *m);
const char *bop_manifest_plain_sha256(const bop_manifest_t *m);
const char *bop_manifest_stored_sha256(const bop_manifest_t *m);
bop_compression_t bop_manifest_compression(const bop_manifest_t *m);
const char *bop_manifest_encryption(const bop_manifest_t *m);
const char *bop_manifest_object_key(const bop_manifest_t *m);
size_t bop_manifest_tag_count(const bop_manifest_t *m);
const char *bop_manifest_tag(const bop_manifest_t *m, size_t i);
int bop_manifest_has_files(const bop_manifest_t *m);
size_t bop_manifest_file_count(const bop_manifest_t *m);

typedef struct bop_backup_options {
	unsigned int version;
	bop_compression_t compression;
	int level;
	int threads;
	const bop_keys_t *keys;
	const char *const *tags;
	const char *engine;
	bop_progress_cb progress;
	void *payload;
} bop_backup_options_t;
#define BOP_BACKUP_OPTIONS_VERSION ...
int bop_backup_options_init(bop_backup_options_t *opts, unsigned int version);
int bop_catalog_backup(bop_catalog_t *catalog, bop_manifest_t **out, bop_source_t *source,
	const bop_backup_options_t *opts);

typedef struct bop_restore_options {
	unsigned int version;
	const bop_keys_t *keys;
	bop_progress_cb progress;
	void *payload;
} bop_restore_options_t;
#define BOP_RESTORE_OPTIONS_VERSION ...
int bop_restore_options_init(bop_restore_options_t *opts, unsigned int version);
int bop_catalog_restore(bop_catalog_t *catalog, const bop_manifest_t *m, bop_sink_t *sink,
	const bop_restore_options_t *opts);
int bop_catalog_verify(bop_catalog_t *catalog, const bop_manifest_t *m,
	const bop_restore_options_t *opts);
void bop_catalog_cancel(bop_catalog_t *catalog);
int bop_catalog_id_valid(const char *id);
int bop_catalog_remove(bop_catalog_t *catalog, const char *id);

/* retention.h */
typedef struct bop_retention_policy {
	unsigned int version;
	unsigned int keep_last;
	unsigned int keep_hourly;
	unsigned int keep_daily;
	unsigned int keep_weekly;
	unsigned int keep_monthly;
	unsigned int keep_yearly;
	int64_t keep_within_seconds;
	const char *const *keep_tags;
} bop_retention_policy_t;
#define BOP_RETENTION_POLICY_VERSION ...
int bop_retention_policy_init(bop_retention_policy_t *policy, unsigned int version);
typedef struct bop_retention_plan bop_retention_plan_t;
int bop_retention_plan(bop_retention_plan_t **out, const bop_manifest_list_t *backups,
	const bop_retention_policy_t *policy, int64_t now);
size_t bop_retention_plan_count(const bop_retention_plan_t *plan);
const char *bop_retention_plan_id(const bop_retention_plan_t *plan, size_t i);
int bop_retention_plan_keep(const bop_retention_plan_t *plan, size_t i);
const char *bop_retention_plan_labels(const bop_retention_plan_t *plan, size_t i);
int bop_retention_plan_format(const bop_retention_plan_t *plan, char **text);
void bop_retention_plan_free(bop_retention_plan_t *plan);
int bop_catalog_prune(bop_catalog_t *catalog, size_t *removed,
	const bop_retention_plan_t *plan);

/* schedule.h */
typedef struct bop_schedule bop_schedule_t;
int bop_schedule_parse(bop_schedule_t **out, const char *expr, const char *time_zone);
int bop_schedule_next(const bop_schedule_t *s, int64_t *next, int64_t after);
int bop_schedule_due(const bop_schedule_t *s, int64_t *run, uint64_t *missed, int64_t last,
	int64_t now, int64_t deadline_seconds);
const char *bop_schedule_expression(const bop_schedule_t *s);
const char *bop_schedule_time_zone(const bop_schedule_t *s);
int bop_schedule_format_time(const bop_schedule_t *s, char *buf, size_t size, int64_t t);
void bop_schedule_free(bop_schedule_t *s);

/* log.h */
typedef enum bop_log_level {
	BOP_LOG_TRACE = 0,
	BOP_LOG_DEBUG = 1,
	BOP_LOG_INFO = 2,
	BOP_LOG_WARN = 3,
	BOP_LOG_ERROR = 4,
	BOP_LOG_OFF = 5,
} bop_log_level_t;
typedef enum bop_log_format {
	BOP_LOG_FORMAT_AUTO = 0,
	BOP_LOG_FORMAT_TEXT = 1,
	BOP_LOG_FORMAT_JSON = 2,
} bop_log_format_t;
typedef void (*bop_log_cb)(bop_log_level_t level, const char *component,
	const char *message, void *payload);
void bop_log_set_level(bop_log_level_t level);
int bop_log_level_parse(bop_log_level_t *out, const char *name);
void bop_log_set_format(bop_log_format_t format);
void bop_log_set_fd(int fd);
void bop_log_set_callback(bop_log_cb cb, void *payload);
int bop_log_add_secret(const char *secret);
void bop_log(bop_log_level_t level, const char *component, const char *message);

/* Python callbacks handed to the library (they take the GIL when called). */
extern "Python" int _bop_py_read(void *buf, size_t cap, size_t *got, void *payload);
extern "Python" int _bop_py_write(const void *buf, size_t len, void *payload);
extern "Python" int _bop_py_list(const char *key, const bop_storage_stat_t *st, void *payload);
extern "Python" void _bop_py_progress(uint64_t bytes_in, uint64_t bytes_out, void *payload);
extern "Python" void _bop_py_log(bop_log_level_t level, const char *component,
	const char *message, void *payload);

/* Plug-ins (<backupop/sys/>): the vtables a backend, source or sink written in Python
 * fills in, and the module's own structs that carry a Python handle after them. */
int bop_storage_register(const char *scheme,
	int (*open)(bop_storage_t **out, const char *url, const bop_storage_options_t *opts,
		void *payload),
	void *payload);

struct bop_source {
	unsigned int version;
	int (*read)(bop_source_t *src, void *buf, size_t cap, size_t *got);
	int (*close)(bop_source_t *src);
	void (*free)(bop_source_t *src);
};

struct bop_sink {
	unsigned int version;
	int (*write)(bop_sink_t *sink, const void *buf, size_t len);
	int (*commit)(bop_sink_t *sink);
	void (*abort)(bop_sink_t *sink);
	void (*free)(bop_sink_t *sink);
};

struct bop_storage {
	unsigned int version;
	int (*put)(bop_storage_t *storage, bop_sink_t **out, const char *key,
		const bop_put_options_t *opts);
	int (*get)(bop_storage_t *storage, bop_source_t **out, const char *key, uint64_t offset);
	int (*stat)(bop_storage_t *storage, bop_storage_stat_t *st, const char *key);
	int (*list)(bop_storage_t *storage, const char *prefix, bop_storage_list_cb cb,
		void *payload);
	int (*remove)(bop_storage_t *storage, const char *key);
	void (*free)(bop_storage_t *storage);
	int (*cleanup)(bop_storage_t *storage, const char *prefix, int64_t older_than_seconds,
		int dry_run, bop_storage_list_cb cb, void *payload);
	int (*remove_many)(bop_storage_t *storage, const char *const *keys, size_t n);
};
#define BOP_SOURCE_VERSION ...
#define BOP_SINK_VERSION ...
#define BOP_STORAGE_VERSION ...

struct bop_py_storage { bop_storage_t base; void *handle; };
struct bop_py_source { bop_source_t base; void *handle; };
struct bop_py_sink { bop_sink_t base; void *handle; };

extern "Python" int _bop_py_open(bop_storage_t **out, const char *url,
	const bop_storage_options_t *opts, void *payload);
extern "Python" int _bop_py_st_put(bop_storage_t *storage, bop_sink_t **out, const char *key,
	const bop_put_options_t *opts);
extern "Python" int _bop_py_st_get(bop_storage_t *storage, bop_source_t **out,
	const char *key, uint64_t offset);
extern "Python" int _bop_py_st_stat(bop_storage_t *storage, bop_storage_stat_t *st,
	const char *key);
extern "Python" int _bop_py_st_list(bop_storage_t *storage, const char *prefix,
	bop_storage_list_cb cb, void *payload);
extern "Python" int _bop_py_st_remove(bop_storage_t *storage, const char *key);
extern "Python" void _bop_py_st_free(bop_storage_t *storage);
extern "Python" int _bop_py_src_read(bop_source_t *src, void *buf, size_t cap, size_t *got);
extern "Python" int _bop_py_src_close(bop_source_t *src);
extern "Python" void _bop_py_src_free(bop_source_t *src);
extern "Python" int _bop_py_sink_write(bop_sink_t *sink, const void *buf, size_t len);
extern "Python" int _bop_py_sink_commit(bop_sink_t *sink);
extern "Python" void _bop_py_sink_abort(bop_sink_t *sink);
extern "Python" void _bop_py_sink_free(bop_sink_t *sink);

/* stage.h, sys/stage.h, compress.h, age.h stages, pipeline.h */
typedef struct bop_inbuf {
	const void *src;
	size_t size;
	size_t pos;
} bop_inbuf_t;
typedef struct bop_outbuf {
	void *dst;
	size_t size;
	size_t pos;
} bop_outbuf_t;
typedef enum bop_stream_directive {
	BOP_STREAM_CONTINUE = 0,
	BOP_STREAM_FLUSH = 1,
	BOP_STREAM_END = 2,
} bop_stream_directive_t;
typedef struct bop_stage bop_stage_t;
struct bop_stage {
	unsigned int version;
	const char *name;
	int (*process)(bop_stage_t *stage, bop_outbuf_t *out, bop_inbuf_t *in,
		bop_stream_directive_t directive);
	void (*free)(bop_stage_t *stage);
};
#define BOP_STAGE_VERSION ...
const char *bop_stage_name(const bop_stage_t *stage);
void bop_stage_free(bop_stage_t *stage);

typedef struct bop_compress_options {
	unsigned int version;
	bop_compression_t algorithm;
	int level;
	int threads;
} bop_compress_options_t;
#define BOP_COMPRESS_OPTIONS_VERSION ...
int bop_compress_options_init(bop_compress_options_t *opts, unsigned int version);
int bop_stage_compress_new(bop_stage_t **out, const bop_compress_options_t *opts);
int bop_stage_decompress_new(bop_stage_t **out, bop_compression_t algorithm);
int bop_stage_age_encrypt_new(bop_stage_t **out, const bop_keys_t *keys);
int bop_stage_age_decrypt_new(bop_stage_t **out, const bop_keys_t *keys);

typedef struct bop_pipeline bop_pipeline_t;
typedef struct bop_pipeline_options {
	unsigned int version;
	size_t buffer_size;
	bop_progress_cb progress;
	void *payload;
	unsigned int progress_interval_ms;
} bop_pipeline_options_t;
#define BOP_PIPELINE_OPTIONS_VERSION ...
int bop_pipeline_options_init(bop_pipeline_options_t *opts, unsigned int version);
int bop_pipeline_new(bop_pipeline_t **out, const bop_pipeline_options_t *opts);
int bop_pipeline_set_source(bop_pipeline_t *p, bop_source_t *source);
int bop_pipeline_add_stage(bop_pipeline_t *p, bop_stage_t *stage);
int bop_pipeline_set_sink(bop_pipeline_t *p, bop_sink_t *sink);
int bop_pipeline_run(bop_pipeline_t *p);
void bop_pipeline_cancel(bop_pipeline_t *p);
uint64_t bop_pipeline_bytes_in(const bop_pipeline_t *p);
uint64_t bop_pipeline_bytes_out(const bop_pipeline_t *p);
void bop_pipeline_free(bop_pipeline_t *p);

struct bop_py_stage { bop_stage_t base; void *handle; };
extern "Python" int _bop_py_stage_process(bop_stage_t *stage, bop_outbuf_t *out,
	bop_inbuf_t *in, bop_stream_directive_t directive);
extern "Python" void _bop_py_stage_free(bop_stage_t *stage);

/* engine.h, sys/engine.h */
typedef struct bop_engine bop_engine_t;
typedef void (*bop_engine_warning_cb)(const char *field, const char *message, void *payload);
struct bop_engine {
	unsigned int version;
	int (*validate)(bop_engine_t *engine);
	int (*backup)(bop_engine_t *engine, bop_source_t **out);
	int (*restore)(bop_engine_t *engine, bop_sink_t **out);
	int (*pod_customize)(bop_engine_t *engine, char **patch_json);
	void (*free)(bop_engine_t *engine);
	int (*count_rows)(bop_engine_t *engine, int64_t *tables, int64_t *rows);
	int (*warnings)(bop_engine_t *engine, bop_engine_warning_cb cb, void *payload);
};
#define BOP_ENGINE_VERSION ...
int bop_engine_open(bop_engine_t **out, const char *name, const char *config_json);
void bop_engine_free(bop_engine_t *engine);
int bop_engine_validate(bop_engine_t *engine);
int bop_engine_backup(bop_engine_t *engine, bop_source_t **out);
int bop_engine_restore(bop_engine_t *engine, bop_sink_t **out);
int bop_engine_register(const char *name, unsigned int capabilities,
	int (*open)(bop_engine_t **out, const char *config_json, void *payload), void *payload);

struct bop_py_engine { bop_engine_t base; void *handle; };
extern "Python" int _bop_py_eng_open(bop_engine_t **out, const char *config_json,
	void *payload);
extern "Python" int _bop_py_eng_validate(bop_engine_t *engine);
extern "Python" int _bop_py_eng_backup(bop_engine_t *engine, bop_source_t **out);
extern "Python" int _bop_py_eng_restore(bop_engine_t *engine, bop_sink_t **out);
extern "Python" void _bop_py_eng_free(bop_engine_t *engine);
