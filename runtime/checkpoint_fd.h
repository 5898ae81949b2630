/* checkpoint_fd.h -- libchain-private: checkpoints the trainer holds open.
 *
 * The training loop keeps its best params in the checkpoint file rather than
 * in a theta-sized buffer: it writes them when they improve, rewrites the file
 * with new metadata (the tensors copied from the previous file) when only the
 * epoch moves on, and reads them back at the end.  It commits each file on a
 * thread while the next epoch runs (atomic_bg.h).  It holds a descriptor of
 * the last file it wrote, so what it copies or reads back is what it wrote,
 * even if the path is replaced or removed meanwhile.
 */
#ifndef CHAIN_CHECKPOINT_FD_H
#define CHAIN_CHECKPOINT_FD_H

#include "chain/checkpoint.h"

#include "atomic_file.h"

/* chain_checkpoint_save stopped short of the commit: the file is written
 * into *af's temp file, to be committed by chain__atomic_commit_fd (or on a
 * thread, atomic_bg.h), which gives the descriptor to hold; on failure
 * nothing is left behind.  The tensors come from theta, or when theta is
 * NULL from the checkpoint open as src (one written by this function for
 * the same model: the file again with new metadata).  The bytes are in the
 * temp file or af's own buffer on return: theta may change before the
 * commit. */
int chain__checkpoint_write(const char *path, const chain_model *m, const void *theta, int src,
                            const chain_metadata *extra, size_t n_extra, atomic_file *af, chain_error *err);

/* chain_checkpoint_load from the checkpoint open as fd (path names it in
 * messages); fd stays open. */
int chain__checkpoint_load_fd(int fd, const char *path, const chain_model *m, void *theta,
                              chain_error *err);

#endif
