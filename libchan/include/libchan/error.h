/* libchan/error.h: the one error enum of the library.
 *
 * Every fallible libchan function returns an int that is LCH_OK (0) or one of
 * the negative codes below. Values are pinned: they are ABI and never change
 * meaning; new codes take new numbers. Names and messages come from the single
 * list LCH_ERRNO_MAP so the enum, lch_err_name() and lch_strerror() cannot
 * drift apart. */
#ifndef LIBCHAN_ERROR_H
#define LIBCHAN_ERROR_H

#include "libchan/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message) */
#define LCH_ERRNO_MAP(X)                                                       \
    X(OK, 0, "success")                                                        \
    X(EAGAIN, -1, "operation would block")                                     \
    X(ETIMEDOUT, -2, "timed out")                                              \
    X(ECLOSED, -3, "channel is closed")                                        \
    X(ENOMEM, -4, "out of memory")                                             \
    X(EINVAL, -5, "invalid argument")                                          \
    X(EINTR, -6, "interrupted by a signal")                                    \
    X(E2BIG, -7, "too large")                                                  \
    X(ENOENT, -8, "not found")                                                 \
    X(EEXIST, -9, "name already in use")                                       \
    X(EOVERFLOW, -10, "reference count would overflow")                       \
    X(ECORRUPT, -11, "corrupt or invalid encoded data")                       \
    X(EMFILE, -12, "no file descriptor available")

typedef enum lch_err {
#define LCH__ERR_ENUM(name, value, msg) LCH_##name = (value),
    LCH_ERRNO_MAP(LCH__ERR_ENUM)
#undef LCH__ERR_ENUM
} lch_err;

/* Message for an error code ("unknown error" for values not in the list).
 * Thread-safe; the string is static. */
LCH_API const char *lch_strerror(int err);

/* Symbolic name without the prefix, e.g. "ECLOSED" ("UNKNOWN" otherwise).
 * Thread-safe; the string is static. */
LCH_API const char *lch_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_ERROR_H */
