/* libchan/select.h: waiting on several channels at once, and waiting from an
 * event loop.
 *
 * - lch_channel_select() blocks a thread until the first of up to
 *   LCH_SELECT_MAX cases (a receive from, or a send to, a channel) can
 *   proceed, and performs that one case: Go's select.
 * - An lch_waiter is a file descriptor (an eventfd) that becomes readable
 *   when a channel it is armed on may have moved: an event loop (epoll,
 *   libuv, asyncio) watches the fd and, when it is readable, calls
 *   lch_waiter_take() and retries the operations it is waiting for.
 *   lch_waiter_recv/_send/_select try an operation and, if it would block,
 *   arm the waiter instead of blocking.
 *
 * Both keep the channel's contract: a send or receive that finds nobody
 * waiting makes no system call; each waiting thread is woken exactly once
 * per notification, and so is each armed waiter (one eventfd write per
 * burst, however many channels fire); a wake-up can be spurious, never
 * lost. See the synchronization table in libchan/channel.h.
 *
 * Why select covers sends too: the case it exists for is a producer blocked
 * on a full bounded channel that must still hear a control channel ("send
 * this, unless told to stop"), which a receive-only select cannot express
 * without a thread per direction. A send case costs the same machinery as a
 * receive case: senders park on the channel's send queue as receivers park
 * on its receive queue. */
#ifndef LIBCHAN_SELECT_H
#define LIBCHAN_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "libchan/channel.h"
#include "libchan/export.h"
#include "libchan/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most cases one select (blocking or through a waiter) takes. */
#define LCH_SELECT_MAX 64
/* *index after a select that no case answered (timeout, EINTR, ...). */
#define LCH_SELECT_NONE ((size_t)-1)

/* The direction of a case, and of a waiter's event. */
enum { LCH_RECV = 1, LCH_SEND = 2 };

typedef struct lch_select_case {
    lch_channel *ch; /* the caller holds a reference for the call */
    int op;          /* LCH_RECV or LCH_SEND */
    /* LCH_SEND: the value to send, owned by the caller until it is sent
     * (then set to None: the channel owns it). LCH_RECV: set to None on
     * entry, and to the received value (owned by the caller) if this case
     * is the one that completed. */
    lch_value value;
} lch_select_case;

/* Wait until one of cases[0..n) can proceed and perform exactly that one.
 * When several can, each is equally likely to be chosen (the one tried is
 * drawn at random among those that look ready), so no channel starves.
 * Blocking as for lch_channel_recv: timeout_ns 0 tries once, < 0 waits
 * forever, > 0 waits at most that long; it spins (the shortest spin_ns of
 * the channels), then parks on one futex queued on every channel's wait
 * queue; a signal handler that runs ends the wait with LCH_EINTR. Never
 * holds two channels' locks at once, so selects cannot deadlock whatever
 * the order of their cases; the same channel may appear in several cases.
 *
 * Returns LCH_OK with *index the case that completed (see value above).
 * LCH_ECLOSED, with *index the case: a receive from a channel that is
 * closed and drained, or a send to a closed channel; a closed case counts
 * as ready, like any other, so a select over several channels reports a
 * close as that channel's as soon as it is picked. LCH_ENOMEM with *index:
 * a send to an unbounded channel that could not grow. LCH_EAGAIN (timeout
 * 0), LCH_ETIMEDOUT, LCH_EINTR: nothing happened, *index is
 * LCH_SELECT_NONE. LCH_EINVAL: cases or index NULL, n == 0, a NULL channel
 * an op that is not LCH_RECV/LCH_SEND, or a send case whose value's kind is
 * not an lch_kind; LCH_E2BIG: n > LCH_SELECT_MAX.
 * On every error the caller still owns every send case's value. Any thread;
 * the cases array belongs to this call until it returns. */
LCH_API int lch_channel_select(lch_select_case *cases, size_t n,
                               size_t *index, int64_t timeout_ns);

/* ---- fd waiters ------------------------------------------------------------
 *
 * An lch_waiter belongs to one thread at a time (its owner: typically the
 * thread that runs the event loop): its own calls below must not run
 * concurrently with each other. Channels it is armed on may be used,
 * closed, close_now'ed and unref'ed by any thread meanwhile: notifications
 * reach the waiter from any thread. While armed on a channel the waiter
 * holds a reference to it, so the channel lives until the waiter is
 * disarmed, has taken the event, or is freed. After fork(), a child must
 * neither use nor free a waiter made before the fork: its eventfd is the
 * parent's, and notifiers that were mid-write exist only in the parent. */
typedef struct lch_waiter lch_waiter;

/* What lch_waiter_take reports: a channel the waiter was armed on has moved
 * in direction op (LCH_RECV: a value may be queued, or it closed; LCH_SEND:
 * there may be room, or it closed). */
typedef struct lch_waiter_event {
    lch_channel *ch; /* a reference, now owned by the caller */
    int op;
} lch_waiter_event;

/* Create a waiter with its own eventfd (non-blocking, close-on-exec). On
 * success *out is owned by the caller (free it with lch_waiter_free); on
 * failure *out is NULL. Errors: LCH_EINVAL (out NULL), LCH_ENOMEM,
 * LCH_EMFILE (no file descriptor available). Never blocks; any thread (the
 * caller becomes the owner). */
LCH_API int lch_waiter_create(lch_waiter **out);

/* Disarm everything, release every channel reference the waiter holds and
 * close the fd (first waiting, with a brief backoff, for a notifier that is
 * between taking a registration and writing the fd). Remove the fd from
 * your event loop before calling this. Accepts NULL. Owner's thread. */
LCH_API void lch_waiter_free(lch_waiter *w);

/* The fd to watch for readability, valid until lch_waiter_free (-1 for
 * NULL). Do not read or write it yourself. Any thread. */
LCH_API int lch_waiter_fd(const lch_waiter *w);

/* Receive without blocking; if nothing is queued, arm w on ch's receive
 * side instead. Returns LCH_OK (*out owned by the caller), LCH_EAGAIN (w is
 * armed: its fd becomes readable at ch's next send or close, or has already
 * been made readable if a wake-up is due), LCH_ECLOSED (closed and drained;
 * not armed), LCH_ENOMEM or LCH_EOVERFLOW (could not arm), LCH_EINVAL (NULL
 * argument). On error *out is None. Stays armed after LCH_OK if it was
 * armed before (a later wake-up is then spurious). Never blocks (a peer
 * caught between claiming a slot and publishing it makes the fd readable at
 * once instead). Owner's thread. */
LCH_API int lch_waiter_recv(lch_waiter *w, lch_channel *ch, lch_value *out);

/* Send without blocking; if the channel is full, arm w on its send side.
 * LCH_OK: the channel owns v. LCH_EAGAIN: armed (readable at the next
 * receive or close). Otherwise, and on every error, the caller still owns
 * v: LCH_ECLOSED, LCH_ENOMEM (an unbounded channel could not grow, or w
 * could not arm), LCH_EOVERFLOW, LCH_EINVAL (NULL argument, or v.kind not an
 * lch_kind). Owner's thread. */
LCH_API int lch_waiter_send(lch_waiter *w, lch_channel *ch, lch_value v);

/* lch_channel_select with timeout 0 (the case chosen as there, equally
 * likely among the ready ones), arming w on every case if none can
 * proceed. LCH_OK, LCH_ECLOSED and LCH_ENOMEM as there (*index set);
 * LCH_EAGAIN: w is armed on every case. If arming fails part-way
 * (LCH_ENOMEM, LCH_EOVERFLOW, *index the case) the cases before it stay
 * armed. Errors LCH_EINVAL and LCH_E2BIG as there, plus w NULL. Owner's
 * thread. */
LCH_API int lch_waiter_select(lch_waiter *w, lch_select_case *cases,
                              size_t n, size_t *index);

/* Stop watching ch in the directions `ops` (LCH_RECV, LCH_SEND or both),
 * releasing the references the waiter holds to it; a wake-up that already
 * made the fd readable stays (spurious). Not armed there: nothing to do.
 * Returns LCH_OK, or LCH_EINVAL (w or ch NULL, ops not a combination of
 * LCH_RECV and LCH_SEND). Owner's thread. */
LCH_API int lch_waiter_disarm(lch_waiter *w, lch_channel *ch, int ops);

/* Whether the fd is readable, or about to be: a notification came since
 * the last lch_waiter_take. One atomic load, no system call: for a loop
 * that spins briefly before it sleeps (as a blocking receive does), to
 * check without polling the fd. false for NULL. Owner's thread. */
LCH_API bool lch_waiter_pending(const lch_waiter *w);

/* Drain the fd and report up to n events (in the order they fired), each
 * once; the waiter is no longer armed on what it reports. Each event holds
 * a channel reference the caller now owns. Returns how many were written;
 * if that is n, call again: more may be waiting. Call it when the fd is
 * readable, then retry the operations you wait for, re-arming as needed:
 * an event is a hint (another consumer may have taken the value), and an
 * fd readable with no event is a spurious wake-up. Never blocks. Owner's
 * thread. */
LCH_API size_t lch_waiter_take(lch_waiter *w, lch_waiter_event *out,
                               size_t n);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_SELECT_H */
