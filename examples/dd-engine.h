/* An example third-party engine: "dd", the backup of one file. See dd-engine.c. */
#ifndef EXAMPLE_DD_ENGINE_H
#define EXAMPLE_DD_ENGINE_H

/* Registers the engine "dd" with libbackupop. Returns 0 or a negative bop_error_t
 * (BOP_EEXISTS if it is registered already). */
int dd_engine_register(void);

#endif
