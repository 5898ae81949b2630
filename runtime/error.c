/* error.c -- filling a chain_error.
 *
 * libchain never prints: a failing function writes one line into the
 * caller's chain_error and returns -1, and the caller decides what to do.
 */
#include <stdarg.h>
#include <stdio.h>

#include "chain/error.h"

/* printf into err->msg (truncated to fit); err may be NULL when the caller
 * only wants the status.  Returns -1 so that callers can write
 * `return chain_error_set(err, ...);`. */
int chain_error_set(chain_error *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return -1;
}
