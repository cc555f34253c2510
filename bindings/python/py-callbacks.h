/* What only the Python side declares for cffi: each plug-in's struct (the library's struct
 * first, then the Python object's handle from ffi.new_handle, kept alive by the module
 * until the library frees it) and the callbacks the module implements in Python. The C
 * API itself comes from the public headers (gen_cdef.py). */

extern "Python" int _bop_py_read(void *buf, size_t cap, size_t *got, void *payload);
extern "Python" int _bop_py_write(const void *buf, size_t len, void *payload);
extern "Python" int _bop_py_list(const char *key, const bop_storage_stat_t *st, void *payload);
extern "Python" void _bop_py_progress(uint64_t bytes_in, uint64_t bytes_out, void *payload);
extern "Python" void _bop_py_log(bop_log_level_t level, const char *component,
	const char *message, void *payload);
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
struct bop_py_stage { bop_stage_t base; void *handle; };
extern "Python" int _bop_py_stage_process(bop_stage_t *stage, bop_outbuf_t *out,
	bop_inbuf_t *in, bop_stream_directive_t directive);
extern "Python" void _bop_py_stage_free(bop_stage_t *stage);
struct bop_py_engine { bop_engine_t base; void *handle; };
extern "Python" int _bop_py_eng_open(bop_engine_t **out, const char *config_json,
	void *payload);
extern "Python" int _bop_py_eng_validate(bop_engine_t *engine);
extern "Python" int _bop_py_eng_backup(bop_engine_t *engine, bop_source_t **out);
extern "Python" int _bop_py_eng_restore(bop_engine_t *engine, bop_sink_t **out);
extern "Python" void _bop_py_eng_free(bop_engine_t *engine);
