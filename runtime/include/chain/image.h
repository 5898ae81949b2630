/* chain/image.h -- PNG grids of samples. */
#ifndef CHAIN_IMAGE_H
#define CHAIN_IMAGE_H

#include <stddef.h>
#include "chain/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes n images of side x side pixels (values in [0, 1], row-major, image
 * after image) as one greyscale PNG grid, ceil(sqrt(n)) images a row, 1-pixel
 * dark separators, each pixel scaled up `scale` times.  If given != NULL it
 * holds side*side flags per image: given pixels are drawn grey-on-black
 * (white = 1 shown as light grey) and sampled ones in full white, so that an
 * inpainted image shows which part was given.  Written atomically. */
int chain_png_grid(const char *path, const double *pixels, const unsigned char *given,
                   size_t n, size_t side, unsigned scale, chain_error *err);

#ifdef __cplusplus
}
#endif
#endif
