/* libchan/debug.h: counters for tests and leak hunting.
 *
 * System-call counters are always on: they are bumped only next to a futex
 * call or an eventfd write, which cost far more. Object tracking is off by default because a
 * shared counter would bounce a cache line on every object created and
 * destroyed; switch it on before creating the objects you want counted. */
#ifndef LIBCHAN_DEBUG_H
#define LIBCHAN_DEBUG_H

#include <stdbool.h>
#include <stdint.h>

#include "libchan/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lch_debug_counters {
    uint64_t futex_waits; /* FUTEX_WAIT calls made by libchan */
    uint64_t futex_wakes; /* FUTEX_WAKE calls made by libchan */
    int64_t live_objects; /* tracked objects not yet destroyed */
    uint64_t fd_signals;  /* eventfd writes made for fd waiters */
} lch_debug_counters;

/* Snapshot of the process-wide counters (relaxed reads). Any thread. */
LCH_API void lch_debug_counters_get(lch_debug_counters *out);

/* Count objects created from now on in live_objects (each counted object is
 * uncounted when destroyed, whether tracking is still on or not). Any
 * thread. */
LCH_API void lch_debug_track_objects(bool on);

/* Wait until every channel whose last reference was dropped has been freed.
 * Channel memory is returned through an RCU grace period (so registry
 * lookups racing with the last unref never touch freed memory); call this
 * before counting allocations or swapping the allocator. May block; must not
 * be called from inside a libchan destroy callback. */
LCH_API void lch_debug_barrier(void);

struct lch_channel; /* libchan/channel.h */

/* Move an empty, open bounded channel on by n positions, as if n values
 * had passed through it, so tests can cross the points where a ring's
 * position bookkeeping wraps (its slots keep 29 bits of each position).
 * Returns LCH_OK; LCH_EINVAL for NULL, an unbounded channel, or one that
 * is closed or holds values; LCH_E2BIG if the positions would overflow.
 * Takes no reference and never blocks. Any thread, provided no other thread
 * uses the channel during the call. */
LCH_API int lch_debug_channel_advance(struct lch_channel *ch, uint64_t n);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_DEBUG_H */
