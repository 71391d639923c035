/* libchan/channel.h: multi-producer multi-consumer channels of lch_value.
 *
 * Synchronization table: which operations may run at the same time on one
 * channel, from any threads (X = yes, safely; the channel is the only shared
 * state, and no call takes a lock another call can hold while blocked).
 * select = lch_channel_select with a case on this channel; waiter =
 * lch_waiter_recv/_send/_select/_disarm/_take/_free on a waiter armed on
 * it (libchan/select.h).
 *
 *                send recv send_  recv_  close close_ len/ unref     select waiter
 *                          batch  batch        now    id   (not last)
 *   send          X    X    X      X      X     X      X    X         X      X
 *   recv          X    X    X      X      X     X      X    X         X      X
 *   send_batch    X    X    X      X      X     X      X    X         X      X
 *   recv_batch    X    X    X      X      X     X      X    X         X      X
 *   close         X    X    X      X      X     X      X    X         X      X
 *   close_now     X    X    X      X      X     X      X    X         X      X
 *   len/id/...    X    X    X      X      X     X      X    X         X      X
 *   select        X    X    X      X      X     X      X    X         X      X
 *   waiter        X    X    X      X      X     X      X    X         X      X*
 *
 * X*: two waiters armed on one channel, each from its owner's thread; the
 * calls on one waiter are never concurrent with each other (its owner's
 * thread makes them). An armed waiter holds a reference to the channel, so
 * its calls never race with the channel's last unref.
 *
 * The only rule: a thread must hold a reference for as long as it calls into a
 * channel, so the last unref cannot race with any other call on that channel.
 * Lookups through the registry (lch_channel_lookup_*) may race with the last
 * unref: they return a new reference or LCH_ENOENT, never a dying channel.
 *
 * Ordering: values are received in the order their sends took effect. Two
 * sends from one thread are received in that order by any single receiver
 * sequence (per-producer FIFO); sends from different threads interleave in the
 * order they claimed a slot. Everything a sender wrote before a successful
 * send happens-before the matching receive returns (release/acquire).
 *
 * Blocking: timeout_ns == 0 tries once and never blocks (LCH_EAGAIN);
 * timeout_ns < 0 waits forever; timeout_ns > 0 waits at most that many
 * nanoseconds on CLOCK_MONOTONIC (LCH_ETIMEDOUT). A waiter first spins briefly
 * (spin_ns, see lch_channel_opts), then parks on a futex. A sender or receiver
 * that finds nobody parked makes no system call. A signal delivered to a
 * parked thread whose handler runs ends the wait with LCH_EINTR (nothing was
 * transferred), so a language binding can run its signal handlers.
 *
 * Close: lch_channel_close() is idempotent and wakes every parked sender and
 * receiver (a select waiting on the channel among others too) and fires
 * every fd waiter armed on it. Afterwards sends fail with LCH_ECLOSED and receives drain what is
 * queued, then fail with LCH_ECLOSED. lch_channel_close_now() also discards and
 * releases what is queued. Every object reference queued in a channel is
 * released exactly once: by the receiver that gets it, by close_now, or when
 * the channel is destroyed.
 *
 * Channels are refcounted objects (lch_channel_object()), so a channel can be
 * sent through a channel. */
#ifndef LIBCHAN_CHANNEL_H
#define LIBCHAN_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "libchan/export.h"
#include "libchan/object.h"
#include "libchan/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lch_channel lch_channel;

#define LCH_NOWAIT ((int64_t)0)
#define LCH_FOREVER ((int64_t)-1)

/* Largest bounded capacity (slots are 16 bytes each: 2 GiB). */
#define LCH_CHANNEL_MAX_CAPACITY ((size_t)1 << 27)
/* Longest name, in bytes, without the terminating NUL. */
#define LCH_CHANNEL_MAX_NAME 255
/* Spin budget used when lch_channel_opts.spin_ns is negative. */
#define LCH_DEFAULT_SPIN_NS ((int64_t)20000)

typedef struct lch_channel_opts {
    size_t capacity;  /* 0 = unbounded; else back-pressure at this many */
    const char *name; /* NULL = anonymous; else unique among live channels */
    int64_t spin_ns;  /* < 0: LCH_DEFAULT_SPIN_NS; 0: park at once */
    /* Not interpreted by libchan: a binding's per-channel settings, fixed
     * at creation, so every holder of the channel (another interpreter, a
     * lookup by name) reads the same (lch_channel_user_flags and
     * lch_channel_user_value). The Python binding keeps its flags in the
     * first and, in the second, the maxsize it was given (which may be
     * negative: Python reports it as given, and treats it as unbounded). */
    uint32_t user_flags;
    int64_t user_value;
} lch_channel_opts;

/* Initialise options with this, then set the fields you need, so code keeps
 * its meaning if fields are added:
 *     lch_channel_opts o = LCH_CHANNEL_OPTS_INIT; o.capacity = 64; */
#define LCH_CHANNEL_OPTS_INIT {0, NULL, -1, 0, 0}

/* Create an anonymous channel. capacity 0 means unbounded. On success *out
 * holds the only reference, owned by the caller; on failure *out is NULL.
 * Errors: LCH_EINVAL (out NULL), LCH_E2BIG (capacity above the maximum),
 * LCH_ENOMEM. Never blocks; any thread. */
LCH_API int lch_channel_create(lch_channel **out, size_t capacity);

/* Same with options (opts NULL = defaults). A named channel is also
 * registered under its name until it is destroyed. Extra errors: LCH_EINVAL
 * (empty name), LCH_E2BIG (name longer than LCH_CHANNEL_MAX_NAME),
 * LCH_EEXIST (a live channel already has the name). */
LCH_API int lch_channel_create_opts(lch_channel **out,
                                    const lch_channel_opts *opts);

/* Send one value. On success the channel owns `v` (and the reference it may
 * hold); on any error the caller still owns it. Errors: LCH_EINVAL (ch NULL,
 * or v.kind not an lch_kind), LCH_ECLOSED, LCH_EAGAIN (full, timeout 0),
 * LCH_ETIMEDOUT, LCH_EINTR, LCH_ENOMEM (unbounded channel could not grow).
 * Blocks only on a full bounded channel, per timeout_ns. Any thread. */
LCH_API int lch_channel_send(lch_channel *ch, lch_value v, int64_t timeout_ns);

/* Receive one value into *out, which the caller then owns. On error *out is
 * None. Errors: LCH_EINVAL (NULL argument), LCH_ECLOSED (closed and drained),
 * LCH_EAGAIN (empty, timeout 0), LCH_ETIMEDOUT, LCH_EINTR. Blocks while empty,
 * per timeout_ns. Any thread. */
LCH_API int lch_channel_recv(lch_channel *ch, lch_value *out,
                             int64_t timeout_ns);

/* Send up to n values from v[0..n). Waits (per timeout_ns) until at least one
 * can be sent, then sends as many as fit at once, in order. On success
 * *nsent >= 1 and the channel owns v[0..*nsent); the caller still owns the
 * rest (an unbounded channel that cannot grow part-way also returns LCH_OK
 * with the values it took). On error *nsent is 0 and the caller owns
 * everything. Errors as for lch_channel_send, plus LCH_EINVAL for NULL
 * pointers or n == 0. */
LCH_API int lch_channel_send_batch(lch_channel *ch, const lch_value *v,
                                   size_t n, size_t *nsent,
                                   int64_t timeout_ns);

/* Receive up to n values into out[0..n). Waits (per timeout_ns) until at least
 * one is queued, then takes as many as are ready, in order. On success
 * *nrecv >= 1 and the caller owns out[0..*nrecv); out[*nrecv..n) is left
 * untouched. On error *nrecv is 0. Errors as for lch_channel_recv, plus
 * LCH_EINVAL for NULL pointers or n == 0. */
LCH_API int lch_channel_recv_batch(lch_channel *ch, lch_value *out, size_t n,
                                   size_t *nrecv, int64_t timeout_ns);

/* Close: idempotent; wakes all parked senders and receivers. Queued values
 * stay receivable. Returns LCH_EINVAL for NULL, else LCH_OK. Never blocks
 * (beyond waiting for senders that already claimed a slot to finish writing
 * it). Any thread. */
LCH_API int lch_channel_close(lch_channel *ch);

/* Close and release everything queued; when it returns the channel is empty
 * and every receive fails with LCH_ECLOSED. Idempotent. Returns LCH_EINVAL for
 * NULL, else LCH_OK. Any thread. */
LCH_API int lch_channel_close_now(lch_channel *ch);

/* Snapshots: queued values (exact when no send or receive is in flight),
 * the capacity given at creation (0 = unbounded), whether close has been
 * called. NULL gives 0/false. Never block; any thread. */
LCH_API size_t lch_channel_len(const lch_channel *ch);
LCH_API size_t lch_channel_capacity(const lch_channel *ch);
LCH_API int lch_channel_is_closed(const lch_channel *ch);

/* Process-unique id, never reused, never 0 (0 for NULL). */
LCH_API uint64_t lch_channel_id(const lch_channel *ch);

/* The name given at creation, or NULL. Valid while the caller holds a
 * reference. */
LCH_API const char *lch_channel_name(const lch_channel *ch);
/* The user_flags and user_value given at creation (0 for NULL): plain
 * values, nothing to own or release. Never block; any thread, at any time. */
LCH_API uint32_t lch_channel_user_flags(const lch_channel *ch);
LCH_API int64_t lch_channel_user_value(const lch_channel *ch);

/* Reference counting (see libchan/object.h). lch_channel_unref accepts NULL.
 * The last unref removes the channel from the registry, releases what is
 * still queued and frees the channel once concurrent lookups are done. */
LCH_API int lch_channel_ref(lch_channel *ch);
LCH_API void lch_channel_unref(lch_channel *ch);

/* The channel as an object (no count change), to put it in an lch_value; and
 * back: NULL when obj is NULL or not a channel. */
LCH_API lch_object *lch_channel_object(lch_channel *ch);
LCH_API lch_channel *lch_channel_from_object(lch_object *obj);

/* Registry lookups. On success *out is a new reference owned by the caller;
 * otherwise *out is NULL and the result is LCH_ENOENT (no live channel; a
 * channel whose last reference is being dropped is not live; id 0 and names
 * longer than LCH_CHANNEL_MAX_NAME never match), LCH_EOVERFLOW (the channel's
 * count is at its ceiling) or LCH_EINVAL (out NULL; name NULL or empty).
 * Lock-free (RCU read side); never block; any thread.
 *
 * fork(): libchan installs pthread_atfork handlers (when the first channel is
 * created) that quiesce liburcu around fork, so a child can keep using
 * libchan: it has its own copy of every channel and of the registry, and the
 * threads that were parked on channels in the parent are simply absent (each
 * channel's wait queues are emptied in the child). A channel that another
 * thread was in the middle of sending to or receiving from at the instant of
 * fork may be left with that one operation half done in the child; use such
 * channels only in the parent. fork() itself waits for liburcu's call_rcu
 * worker to pause, which can take a while if other threads are destroying
 * many channels at that moment. A program that calls urcu_bp_before_fork()
 * itself must not do so as well. */
LCH_API int lch_channel_lookup_id(uint64_t id, lch_channel **out);
LCH_API int lch_channel_lookup_name(const char *name, lch_channel **out);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_CHANNEL_H */
