/* lch_impl.h: the channel internals the core's files share (on top of
 * lch_base.h, which the codecs use too); nothing outside libchan/src sees it.
 *
 * It holds the wait queue (wait.c), the fd waiter's registrations
 * (waiter.c), the two queue engines behind a channel (a bounded ring in
 * ring.c and an unbounded segmented list in list.c), the channel struct
 * (channel.c, with select.c) and the registry (registry.c).
 *
 * Process-global state of the core, all of it:
 *   alloc.c     lch__alloc_hooks      the installed allocator
 *   object.c    lch__track_objects, lch__live_objects   object counting
 *   wait.c      lch__futex_waits/wakes                  syscall counters
 *   waiter.c    lch__fd_signals                         eventfd writes
 *   channel.c   lch__next_channel_id  id source
 *   select.c    sel_rng (thread-local)                  case order of select
 *   registry.c  by_id, by_name        cds_lfht tables (urcu-bp flavor)
 *   buffer.c    cache                 idle large blocks, under cache.lock
 */
#ifndef LCH_IMPL_H
#define LCH_IMPL_H

#include <string.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "lch_base.h"
#include "libchan/libchan.h"

/* ---- wait queues (wait.c) ------------------------------------------------ */

/* What a blocked thread sleeps on, on its stack for one blocking call. A
 * send or receive queues one node pointing at it; a select queues one node
 * per case, all pointing at the same sink, and the first notifier to mark
 * it wins: later notifiers skip its other nodes and wake someone else. */
struct lch__sink {
    /* futex word: LCH__S_QUEUED, LCH__S_SLEEPING, or LCH__S_SIGNALED with
     * the winning node's tag above LCH__S_TAG_SHIFT */
    _Atomic uint32_t state;
};

enum { LCH__S_QUEUED = 0, LCH__S_SLEEPING = 1, LCH__S_SIGNALED = 2 };
#define LCH__S_TAG_SHIFT 8
#define LCH__S_TAG(state) ((size_t)((state) >> LCH__S_TAG_SHIFT))

/* A node in one wait queue. A thread's node lives on its stack from enqueue
 * until cancel; an fd waiter's registration (struct lch__reg, waiter.c)
 * embeds one. Notifiers unlink and mark nodes under the queue lock, so once
 * lch__waitq_cancel has taken that lock, no notifier touches the node. */
struct lch__wnode {
    struct lch__wnode *next, *prev; /* FIFO links, under the queue lock */
    struct lch__sink *sink; /* a thread's sink; NULL: an fd registration */
    uint32_t tag;           /* reported in the sink (select: the case) */
    bool linked;            /* in the FIFO, under the queue lock */
};

/* One side's waiters: receivers waiting for values, or senders for room.
 * Parked threads wait in FIFO order and a notification of n wakes the n
 * oldest (skipping selects already woken through another channel); fd
 * registrations are separate and every notification signals all of them,
 * since each belongs to an event loop that retries on its own (so a loop
 * that lost interest never swallows a wake-up meant for a thread).
 *
 * Two ways to tell a notifier that someone is waiting:
 *   - `waiters`, read after a seq_cst fence (lch__waitq_notify): the
 *     unbounded engine uses this;
 *   - a flag bit inside the position word the other side claims with a CAS
 *     anyway (`flag_word`, `flag_bit`): the bounded ring uses this, so its
 *     fast path has no fence. The bit is set while either FIFO is
 *     non-empty, changed only under the lock. A claim that did not see it
 *     was made before the bit was set, at a position below `flag_pos` (the
 *     word's position when it was set), so a waiter may park only once the
 *     other side's progress has passed flag_pos (see channel.c). */
struct lch__waitq {
    _Atomic uint32_t waiters;  /* linked nodes of both kinds; read lock-free */
    _Atomic uint32_t lock;     /* spinlock over the FIFOs (slow path only) */
    struct lch__wnode *head, *tail;   /* parked threads, oldest first */
    struct lch__wnode *rhead, *rtail; /* fd registrations */
    _Atomic uint64_t *flag_word; /* NULL: counter mode; fixed at creation */
    uint64_t flag_bit;
    uint64_t flag_pos; /* under the lock: position when the bit was set */
};

void lch__waitq_wake_slow(struct lch__waitq *wq, int n);

/* Called after making progress (values published, or slots freed): wake up
 * to n parked threads, oldest first, and signal every fd registration.
 * Makes no system call unless a waiter is queued. The seq_cst fence pairs
 * with the one in lch__waitq_enqueue: either this load sees the waiter, or
 * the waiter's re-check sees the progress (store-buffering is forbidden
 * between two seq_cst fences). */
static inline void lch__waitq_notify(struct lch__waitq *wq, int n)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (LCH__UNLIKELY(atomic_load_explicit(&wq->waiters,
                                           memory_order_relaxed) != 0))
        lch__waitq_wake_slow(wq, n);
}

/* Queue `w` (its sink and tag set; sink NULL for a registration). The
 * caller must re-check its condition after this and then either park or
 * lch__waitq_cancel(). Returns the flag position (flag mode; 0 in counter
 * mode): before parking, the caller must see the other side's progress at
 * or past it. */
uint64_t lch__waitq_enqueue(struct lch__waitq *wq, struct lch__wnode *w);
/* Leave the queue. Returns true if a notifier had already taken `w` out
 * (a thread node: its sink was marked, or skipped as already marked; a
 * registration: it fired). Afterwards no notifier touches `w`. */
bool lch__waitq_cancel(struct lch__waitq *wq, struct lch__wnode *w);
/* A registration that must not wait (a peer is mid-operation, see
 * channel.c): fire it now, as a notifier would, if it is still queued. */
void lch__waitq_fire(struct lch__waitq *wq, struct lch__wnode *w);
/* Sleep until the sink is signalled, the deadline (absolute CLOCK_MONOTONIC
 * ns, < 0 for none) passes, or a signal handler runs. Returns LCH_OK
 * (signalled), LCH_ETIMEDOUT or LCH_EINTR; the nodes stay queued (cancel
 * them, then read the sink: it may have been signalled meanwhile). */
int lch__sink_park(struct lch__sink *s, int64_t deadline_ns);

int64_t lch__now_ns(void); /* CLOCK_MONOTONIC */

/* ---- fd waiters (waiter.c) ------------------------------------------------
 * An lch_waiter (libchan/select.h) owns an eventfd and one registration per
 * (channel, direction) it is armed on. A registration is queued on the
 * channel's wait queue like a thread; a notifier that takes it out (under
 * the queue lock) pushes it on the waiter's `fired` stack and makes the fd
 * readable, with one write per burst (`pending`, as libuv's uv_async_send).
 * The owner's lch_waiter_take drains the fd, then collects the stack. */
struct lch__reg {
    struct lch__wnode node;  /* in ch's recv_wq or send_wq (sink NULL) */
    struct lch__reg *fnext;  /* fired stack, then the owner's collected list */
    lch_waiter *owner;
    lch_channel *ch;         /* one reference, for as long as the reg exists */
    uint64_t key;            /* ch's id << 1 | 1 for the send side */
};

/* Under the queue lock, for a registration a notifier just unlinked: push
 * it on its waiter's fired stack. Returns the waiter if the fd must be
 * written (pass it to lch__waiter_signal after unlocking), else NULL. */
lch_waiter *lch__reg_fired(struct lch__wnode *node);
/* Outside any lock: make the fd readable and release the notifier's claim
 * on the waiter taken by lch__reg_fired. */
void lch__waiter_signal(lch_waiter *w);

/* For select.c (the owner's thread): the registration of (ch, send) on w.
 * Returns 1 with *out set if w is already armed there (queued, or fired and
 * not yet taken: either way its fd will be readable), 0 with *out a new
 * registration (holding a reference to ch, not yet queued: the caller
 * queues it), or LCH_ENOMEM / LCH_EOVERFLOW. */
int lch__waiter_reg(lch_waiter *w, lch_channel *ch, bool send,
                    struct lch__reg **out);
/* Forget a registration the caller has cancelled: if it fired (cancel
 * returned true) it is reclaimed from the fired stack first. Releases the
 * channel reference and frees it. Owner's thread. */
void lch__waiter_reg_drop(lch_waiter *w, struct lch__reg *r, bool fired);

static inline void lch__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* After a claim lost its position to another thread (its CAS on the shared
 * position word failed, or it found the position already taken; a flag that
 * changed under the CAS counts too): pause 2^step times (step counts the
 * losses, capped at 6: at most 64 pauses; never yields), so that claimers
 * that lost stop pulling the word's cache line away from the one that won.
 * The uncontended path never calls it. */
static inline void lch__cas_backoff(unsigned *step)
{
    for (unsigned i = 0; i < (1u << *step); i++)
        lch__cpu_relax();
    if (*step < 6)
        (*step)++;
}

/* Wait for a peer that has claimed a slot but not finished with it (a sender
 * between claim and publish, a receiver between claim and release): spin,
 * then yield the CPU so a preempted peer can run. `step` counts calls. */
void lch__backoff(unsigned *step);

/* ---- queue engines (ring.c, list.c) ---------------------------------------
 * Both expose the same non-blocking operations; channel.c adds blocking.
 * try_send/try_recv move up to n values and return LCH_OK (*done >= 1),
 * LCH_EAGAIN (nothing could move now), LCH_ECLOSED, LCH_ENOMEM (list), or
 * LCH__ECLOSING (recv only: closed, but a sender that claimed a slot before
 * the close has not finished writing it; the caller must not park, since
 * nothing will wake it when that last value is taken by someone else). */
#define LCH__ECLOSING (-1000)

/* A queued lch_value in the value's own 16 bytes, in either engine: the
 * state word takes the place of `kind` and carries the kind together with
 * the engine's own bookkeeping (ring.c: the low 29 bits of the position the
 * slot expects next, above a 3-bit kind; list.c: WRITE/READ/DESTROY above
 * the kind). So four slots share a cache line. */
struct lch__slot {
    _Atomic uint32_t state; /* kind | the engine's bits */
    uint32_t tag;           /* the value's tag */
    uint64_t bits;          /* the value's union, bit for bit */
};
_Static_assert(sizeof(struct lch__slot) == sizeof(lch_value),
               "a slot is one value");

/* Fill a slot with v's tag and union; its kind goes into the state word,
 * with the store that publishes the slot. */
static inline void lch__slot_put(struct lch__slot *s, const lch_value *v)
{
    s->tag = v->tag;
    memcpy(&s->bits, &v->u, sizeof s->bits);
}

/* The value in a published slot its caller owns, given the kind taken from
 * the state word. */
static inline lch_value lch__slot_get(const struct lch__slot *s,
                                      uint32_t kind)
{
    lch_value v;
    v.kind = kind;
    v.tag = s->tag;
    memcpy(&v.u, &s->bits, sizeof v.u);
    return v;
}

/* The ring's state word: seq << LCH__SEQ_SHIFT | kind. */
#define LCH__SEQ_SHIFT 3
#define LCH__SLOT_KIND ((1u << LCH__SEQ_SHIFT) - 1)
_Static_assert(LCH_OBJECT <= LCH__SLOT_KIND, "a kind fits a slot's state");
/* Seq comparisons are modulo 2^29 and must tell a slot's seq apart from
 * positions up to a ring's length away on either side. */
_Static_assert(LCH_CHANNEL_MAX_CAPACITY < ((size_t)1 << (31 - LCH__SEQ_SHIFT)),
               "a ring is shorter than half the seq's range");

/* Ring position words: the position in the low 62 bits, then flags. */
#define LCH__POS_MASK (((uint64_t)1 << 62) - 1)
#define LCH__RING_WAIT ((uint64_t)1 << 62)   /* the other side has waiters */
#define LCH__RING_CLOSED ((uint64_t)1 << 63) /* tail; head: the hint */

struct lch__ring {
    /* producers: next position to claim; CLOSED; WAIT = receivers parked */
    alignas(LCH__CACHELINE) _Atomic uint64_t tail;
    /* consumers: next position to take; WAIT = senders parked; CLOSED =
     * close has begun (a hint: tail's flag is the authority) */
    alignas(LCH__CACHELINE) _Atomic uint64_t head;
    /* read-only after init */
    alignas(LCH__CACHELINE) struct lch__slot *slots;
    uint64_t cap;  /* logical capacity */
    uint64_t phys; /* slots: cap, or 2 when cap is 1 (see ring.c) */
    uint64_t mask; /* phys - 1 when phys is a power of two, else 0 */
};

int lch__ring_init(struct lch__ring *r, size_t cap);
void lch__ring_fini(struct lch__ring *r); /* releases what is queued */
/* *wake is set when the claim saw the other side's WAIT flag: the caller
 * must then wake that side's waiters. */
int lch__ring_try_send(struct lch__ring *r, const lch_value *v, size_t n,
                       size_t *done, bool *wake);
int lch__ring_try_recv(struct lch__ring *r, lch_value *out, size_t n,
                       size_t *done, bool *wake);
bool lch__ring_close(struct lch__ring *r); /* true if this call closed it */
bool lch__ring_is_closed(const struct lch__ring *r);
size_t lch__ring_len(const struct lch__ring *r);

struct lch__block;
struct lch__list_pos {
    _Atomic uint64_t index;                /* position << 1 | mark bit */
    _Atomic(struct lch__block *) block;    /* block holding `index` */
};

struct lch__list {
    alignas(LCH__CACHELINE) struct lch__list_pos tail; /* mark = closed */
    alignas(LCH__CACHELINE) struct lch__list_pos head; /* mark = more blocks */
    _Atomic uint64_t seen_tail; /* a position tail has reached (receivers) */
    /* a retired block kept for the next sender that needs one, or NULL */
    alignas(LCH__CACHELINE) _Atomic(struct lch__block *) spare;
};

int lch__list_init(struct lch__list *l);
void lch__list_fini(struct lch__list *l);
int lch__list_try_send(struct lch__list *l, const lch_value *v, size_t n,
                       size_t *done);
int lch__list_try_recv(struct lch__list *l, lch_value *out, size_t n,
                       size_t *done);
bool lch__list_close(struct lch__list *l);
bool lch__list_is_closed(const struct lch__list *l);
size_t lch__list_len(const struct lch__list *l);

/* ---- channels (channel.c) ------------------------------------------------ */

struct lch_channel {
    /* read-mostly line: header, identity, configuration */
    alignas(LCH__CACHELINE) lch_object hdr;
    uint64_t id;
    size_t capacity;   /* as requested; 0 = unbounded (list engine) */
    int64_t spin_ns;
    uint32_t user_flags; /* opaque to libchan (lch_channel_opts) */
    int64_t user_value;  /* likewise */
    char *name;        /* NULL or owned copy; freed after a grace period */
    _Atomic bool discarding; /* close_now ran: receives fail at once */
    _Atomic bool published;  /* in both registry maps: lookups may see it */
    struct cds_lfht_node id_node;
    struct cds_lfht_node name_node;
    struct rcu_head rcu;
    alignas(LCH__CACHELINE) struct lch__waitq recv_wq; /* wait for values */
    alignas(LCH__CACHELINE) struct lch__waitq send_wq; /* wait for room */
    union {
        struct lch__ring ring;
        struct lch__list list;
    } q;
};

/* In a child after fork(): the threads that were parked on the channel do
 * not exist there (their waiter nodes were on stacks the child will reuse),
 * and a wait-queue lock held at the instant of fork would never be
 * released. Empties both wait queues. Single-threaded (child handler). */
void lch__channel_after_fork_child(lch_channel *ch);

/* ---- registry (registry.c) ----------------------------------------------- */

/* Add a new channel under its id (and name). LCH_EEXIST if a live channel has
 * the name; LCH_ENOMEM if the tables cannot be created. */
int lch__registry_add(lch_channel *ch);
/* Remove a dying channel (refcount 0) and free it after a grace period with
 * `free_fn`, which runs on liburcu's call_rcu thread. */
void lch__registry_remove_and_free(lch_channel *ch,
                                   void (*free_fn)(struct rcu_head *));
/* Wait for every deferred free to have run. */
void lch__registry_barrier(void);

/* Debug counters (wait.c, waiter.c) */
extern _Atomic uint64_t lch__futex_waits;
extern _Atomic uint64_t lch__futex_wakes;
extern _Atomic uint64_t lch__fd_signals;

/* A value a channel accepts: its kind is an lch_kind. Both engines rely on
 * it: the ring keeps a kind in 3 bits of a slot's state word, next to the
 * slot's seq, and the list in 24 bits, under its state flags. */
static inline bool lch__value_ok(const lch_value *v)
{
    return LCH__LIKELY(v->kind <= LCH_OBJECT);
}

#endif /* LCH_IMPL_H */
