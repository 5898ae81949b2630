/* cg_build.h -- `chain build`'s object file, compiled on several threads
 * (cg_emit.c). */
#ifndef CG_BUILD_H
#define CG_BUILD_H

#include "chainc.h"

/* The object of cg_generate and cg_emit(EMIT_OBJ), the same machine code,
 * with the kernels compiled on up to as many threads as there are CPUs (at
 * most 4): the file is the same bits whatever the thread count.  Returns
 * -1 with *err set. */
int cg_build_object(const ir_module *m, const cg_options *o, const char *path, char **err);
/* The same object in memory: *data (malloc'd) of *size bytes, which the
 * JIT links (jit_load_object). */
int cg_build_object_memory(const ir_module *m, const cg_options *o, void **data, size_t *size, char **err);

#endif
