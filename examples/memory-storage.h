/* An example third-party storage backend: "memory://NAME". See memory-storage.c. */
#ifndef EXAMPLE_MEMORY_STORAGE_H
#define EXAMPLE_MEMORY_STORAGE_H

/* Registers the "memory" URL scheme with libbackupop. Call once, before opening
 * "memory://..." URLs. Returns 0 or a negative bop_error_t (BOP_EEXISTS if it is
 * registered already). */
int memory_storage_register(void);

#endif
