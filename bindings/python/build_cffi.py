#!/usr/bin/python3
"""Writes the C source of the backupop._backupop extension module (cffi, out-of-line API
mode). Meson compiles it against the built libbackupop.

    build_cffi.py CDEF OUTPUT.c
"""
import sys

import cffi

HEADERS = """
#include <backupop/common.h>
#include <backupop/errors.h>
#include <backupop/log.h>
#include <backupop/age.h>
#include <backupop/io.h>
#include <backupop/storage.h>
#include <backupop/compress.h>
#include <backupop/pipeline.h>
#include <backupop/catalog.h>
#include <backupop/retention.h>
#include <backupop/schedule.h>
#include <backupop/sys/io.h>
#include <backupop/sys/storage.h>
#include <backupop/sys/stage.h>
#include <backupop/sys/engine.h>
#include <backupop/engine.h>

/* A plug-in written in Python: the library's struct first, then the Python object's
 * handle (ffi.new_handle), kept alive by the module until the library frees it. */
struct bop_py_storage { bop_storage_t base; void *handle; };
struct bop_py_source { bop_source_t base; void *handle; };
struct bop_py_sink { bop_sink_t base; void *handle; };
struct bop_py_stage { bop_stage_t base; void *handle; };
struct bop_py_engine { bop_engine_t base; void *handle; };
"""


def main(argv):
    if len(argv) != 3:
        sys.exit("usage: build_cffi.py CDEF OUTPUT.c")
    decl, output = argv[1], argv[2]
    ffibuilder = cffi.FFI()
    with open(decl, encoding="utf-8") as f:
        ffibuilder.cdef(f.read())
    ffibuilder.set_source("backupop._backupop", HEADERS)
    ffibuilder.emit_c_code(output)


if __name__ == "__main__":
    main(sys.argv)
