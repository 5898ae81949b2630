/* checkpoint_fd.h -- libchain-private: checkpoints the trainer holds open.
 *
 * The training loop keeps its best params in the checkpoint file rather than
 * in a theta-sized buffer: it writes them when they improve, rewrites the file
 * with new metadata (the tensors copied from the previous file) when only the
 * epoch moves on, and reads them back at the end.  It holds a descriptor of
 * the last file it wrote, so what it copies or reads back is what it wrote,
 * even if the path is replaced or removed meanwhile.
 */
#ifndef CHAIN_CHECKPOINT_FD_H
#define CHAIN_CHECKPOINT_FD_H

#include "chain/checkpoint.h"

/* chain_checkpoint_save, and *fd = a descriptor of the file written (-1 on
 * failure).  close() it. */
int chain__checkpoint_save_fd(const char *path, const chain_model *m, const void *theta,
                              const chain_metadata *extra, size_t n_extra, int *fd, chain_error *err);

/* Writes path again with the metadata `extra` and the tensors of the
 * checkpoint open as *fd (one written by chain__checkpoint_save_fd or this
 * function for the same model); on success *fd is closed and replaced by
 * the new file's descriptor, on failure both files are as they were. */
int chain__checkpoint_restamp(const char *path, const chain_model *m, int *fd,
                              const chain_metadata *extra, size_t n_extra, chain_error *err);

/* chain_checkpoint_load from the checkpoint open as fd (path names it in
 * messages); fd stays open. */
int chain__checkpoint_load_fd(int fd, const char *path, const chain_model *m, void *theta,
                              chain_error *err);

#endif
