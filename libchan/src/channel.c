/* channel.c: channels = a queue engine (ring.c if bounded, list.c if not) +
 * blocking (spin, then park on a futex wait queue) + close + lifetime; and,
 * in select.c (compiled here), select over several channels and the fd
 * waiter's try-or-arm calls.
 *
 * Each channel has two wait queues: receivers park on recv_wq until values
 * arrive; senders of a bounded channel park on send_wq until slots free up.
 * A successful operation wakes the other side only if somebody is parked
 * there, at no cost otherwise: on a bounded channel the claim's own CAS sees
 * a WAIT flag in the position word (no fence, no extra load); on an
 * unbounded one a seq_cst fence and a load of a read-mostly counter
 * (lch__waitq_notify). */
#include <limits.h>
#include <string.h>

#include "lch_impl.h"

/* The two engines are compiled as part of this translation unit so that
 * their fast paths inline into send and receive (they have no other
 * callers); they stay separate files because they are separate designs. */
#include "list.c"
#include "ring.c"

static _Atomic uint64_t lch__next_channel_id = 1;

static void channel_destroy(lch_object *obj);

static const lch_type lch__channel_type = {LCH_TYPE_CHANNEL, "channel",
                                           channel_destroy};

/* ---- lifetime ------------------------------------------------------------ */

static void channel_free_rcu(struct rcu_head *head)
{
    lch_channel *ch = caa_container_of(head, lch_channel, rcu);
    lch__free(ch->name);
    lch__free_aligned(ch);
}

/* Release what is queued and the engine's memory. Single-threaded. */
static void queue_fini(lch_channel *ch)
{
    if (ch->capacity)
        lch__ring_fini(&ch->q.ring);
    else
        lch__list_fini(&ch->q.list);
}

/* Runs once, in the thread that dropped the last reference. */
static void channel_destroy(lch_object *obj)
{
    lch_channel *ch = (lch_channel *)obj;
    queue_fini(ch);
    /* Lookups may still be reading the header: free after a grace period. */
    lch__registry_remove_and_free(ch, channel_free_rcu);
}

int lch_channel_create_opts(lch_channel **out, const lch_channel_opts *opts)
{
    static const lch_channel_opts defaults = LCH_CHANNEL_OPTS_INIT;
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->capacity > LCH_CHANNEL_MAX_CAPACITY)
        return LCH_E2BIG;
    size_t name_len = 0;
    if (opts->name) {
        name_len = strnlen(opts->name, LCH_CHANNEL_MAX_NAME + 1);
        if (name_len == 0)
            return LCH_EINVAL;
        if (name_len > LCH_CHANNEL_MAX_NAME)
            return LCH_E2BIG;
    }

    lch_channel *ch = lch__malloc_aligned(sizeof *ch, LCH__CACHELINE);
    if (!ch)
        return LCH_ENOMEM;
    memset(ch, 0, sizeof *ch);
    ch->capacity = opts->capacity;
    ch->spin_ns = opts->spin_ns < 0 ? LCH_DEFAULT_SPIN_NS : opts->spin_ns;
    ch->user_flags = opts->user_flags;
    ch->user_value = opts->user_value;
    if (opts->name) {
        ch->name = lch__malloc(name_len + 1);
        if (!ch->name) {
            lch__free_aligned(ch);
            return LCH_ENOMEM;
        }
        memcpy(ch->name, opts->name, name_len + 1);
    }
    int rc = ch->capacity ? lch__ring_init(&ch->q.ring, ch->capacity)
                          : lch__list_init(&ch->q.list);
    if (ch->capacity) {
        /* Receivers flag the producers' word, senders the consumers'. */
        ch->recv_wq.flag_word = &ch->q.ring.tail;
        ch->recv_wq.flag_bit = LCH__RING_WAIT;
        ch->send_wq.flag_word = &ch->q.ring.head;
        ch->send_wq.flag_bit = LCH__RING_WAIT;
    }
    if (rc != LCH_OK) {
        lch__free(ch->name);
        lch__free_aligned(ch);
        return rc;
    }
    /* Relaxed: ids only need to be unique. */
    ch->id = atomic_fetch_add_explicit(&lch__next_channel_id, 1,
                                       memory_order_relaxed);
    lch__object_init(&ch->hdr, &lch__channel_type, LCH__OBJ_SELF_FREE);
    rc = lch__registry_add(ch);
    if (rc != LCH_OK) {
        /* Never published: tear down directly, without a grace period. */
        lch__object_forget(&ch->hdr);
        queue_fini(ch);
        lch__free(ch->name);
        lch__free_aligned(ch);
        return rc;
    }
    *out = ch;
    return LCH_OK;
}

int lch_channel_create(lch_channel **out, size_t capacity)
{
    lch_channel_opts opts = LCH_CHANNEL_OPTS_INIT;
    opts.capacity = capacity;
    return lch_channel_create_opts(out, &opts);
}

int lch_channel_ref(lch_channel *ch)
{
    return lch_object_ref(ch ? &ch->hdr : NULL);
}

void lch_channel_unref(lch_channel *ch)
{
    if (ch)
        lch_object_unref(&ch->hdr);
}

lch_object *lch_channel_object(lch_channel *ch)
{
    return ch ? &ch->hdr : NULL;
}

lch_channel *lch_channel_from_object(lch_object *obj)
{
    if (!obj || obj->type != &lch__channel_type)
        return NULL;
    return (lch_channel *)obj;
}

/* ---- blocking ------------------------------------------------------------ */

enum op { OP_SEND, OP_RECV };

struct op_args {
    enum op op;
    lch_value *vals; /* source (send) or destination (recv) */
    size_t n;
    size_t done;
    bool wake; /* ring: the claim saw the other side's WAIT flag */
};

static int try_op(lch_channel *ch, struct op_args *a)
{
    if (a->op == OP_SEND)
        return ch->capacity ? lch__ring_try_send(&ch->q.ring, a->vals, a->n,
                                                 &a->done, &a->wake)
                            : lch__list_try_send(&ch->q.list, a->vals, a->n,
                                                 &a->done);
    /* Acquire pairs with the release store in close_now. */
    if (LCH__UNLIKELY(atomic_load_explicit(&ch->discarding,
                                           memory_order_acquire)))
        return LCH_ECLOSED;
    return ch->capacity ? lch__ring_try_recv(&ch->q.ring, a->vals, a->n,
                                             &a->done, &a->wake)
                        : lch__list_try_recv(&ch->q.list, a->vals, a->n,
                                             &a->done);
}

/* Tell the other side about progress: values for receivers, room for the
 * senders of a bounded channel. */
static inline void after_op(lch_channel *ch, const struct op_args *a)
{
    int n = a->done > INT_MAX ? INT_MAX : (int)a->done;
    if (ch->capacity) {
        if (LCH__UNLIKELY(a->wake))
            lch__waitq_wake_slow(a->op == OP_SEND ? &ch->recv_wq
                                                  : &ch->send_wq,
                                 n);
    } else if (a->op == OP_SEND) {
        lch__waitq_notify(&ch->recv_wq, n); /* unbounded senders never wait */
    }
}

/* Flag mode (bounded): claims made before our WAIT flag was set did not see
 * it and will wake nobody, so park only once the other side has moved past
 * flag_pos; until then back off (those claims finish in a few instructions
 * unless their thread was preempted). */
static bool may_park(const lch_channel *ch, enum op op, uint64_t flag_pos)
{
    if (!ch->capacity)
        return true;
    const struct lch__ring *r = &ch->q.ring;
    if (op == OP_RECV) /* every value claimed before the flag is taken */
        return (atomic_load_explicit(&r->head, memory_order_relaxed) &
                LCH__POS_MASK) >= flag_pos;
    /* A send at position t needs two things from the consumers: the claim
     * of t - cap, which makes room, and the release of slot t % phys by the
     * consumer of t - phys. Each wakes us once it is done if that claim
     * came after the flag. With phys == cap they are one claim. Capacity 1
     * runs on two slots, and there the release of t - 2 may come from a
     * claim made before the flag, landing after the wake-up of t - 1: then
     * only park if that release has already happened. (If tail moves on
     * past t, both claims for the new position are after the flag.) */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed) &
                 LCH__POS_MASK;
    if (t >= flag_pos + r->phys)
        return true;
    /* (Checking that tail is still t makes the seq comparison exact.) */
    return t >= flag_pos + r->cap && seq_is(slot_state(slot_at(r, t)), t) &&
           (atomic_load_explicit(&r->tail, memory_order_relaxed) &
            LCH__POS_MASK) == t;
}

/* Closed, with values still being written by senders that claimed their
 * slots before the close: back off (never park: the wake-up for the last of
 * those values may go to another receiver) until they land, are taken by
 * others (LCH_ECLOSED), or the deadline passes. */
static int wait_closing(lch_channel *ch, struct op_args *a, int64_t deadline)
{
    unsigned step = 0;
    int rc;
    while ((rc = try_op(ch, a)) == LCH__ECLOSING) {
        if (deadline >= 0 && lch__now_ns() >= deadline)
            return LCH_ETIMEDOUT;
        lch__backoff(&step);
    }
    return rc;
}

/* The absolute deadline of a wait that starts now (< 0: none; a deadline
 * too far to represent is no deadline at all), and the end of its spin. */
static int64_t deadline_after(int64_t now, int64_t timeout_ns)
{
    return timeout_ns < 0 || timeout_ns > INT64_MAX - now ? -1
                                                          : now + timeout_ns;
}

static int64_t spin_end_after(int64_t now, int64_t spin_ns, int64_t deadline)
{
    int64_t end = spin_ns > INT64_MAX - now ? INT64_MAX : now + spin_ns;
    return deadline >= 0 && deadline < end ? deadline : end;
}

/* Out of line: the uncontended fast path in channel_op stays small. */
static LCH__NOINLINE int wait_op(lch_channel *ch, struct op_args *a,
                                 int64_t timeout_ns)
{
    struct lch__waitq *wq = a->op == OP_SEND ? &ch->send_wq : &ch->recv_wq;
    int64_t now = lch__now_ns();
    int64_t deadline = deadline_after(now, timeout_ns);
    int rc;

    /* Spin: cheap when the peer is running on another core. */
    if (ch->spin_ns > 0) {
        int64_t spin_end = spin_end_after(now, ch->spin_ns, deadline);
        for (unsigned i = 1;; i++) {
            lch__cpu_relax();
            rc = try_op(ch, a);
            if (rc == LCH__ECLOSING)
                return wait_closing(ch, a, deadline);
            if (rc != LCH_EAGAIN)
                return rc;
            if ((i & 63) == 0 && lch__now_ns() >= spin_end)
                break;
        }
    }

    /* Park. Every enqueue is matched by exactly one cancel. */
    unsigned step = 0;
    for (;;) {
        struct lch__sink sink;
        struct lch__wnode w = {.sink = &sink, .tag = 0};
        atomic_init(&sink.state, LCH__S_QUEUED);
        uint64_t flag_pos = lch__waitq_enqueue(wq, &w);
        rc = try_op(ch, a);
        if (rc == LCH_EAGAIN && !may_park(ch, a->op, flag_pos)) {
            if (lch__waitq_cancel(wq, &w))
                lch__waitq_notify(wq, 1);
            lch__backoff(&step);
        } else if (rc != LCH_EAGAIN) {
            /* If a notifier picked us meanwhile, its wake-up was meant for
             * progress we did not use: hand it to the next waiter. */
            if (lch__waitq_cancel(wq, &w))
                lch__waitq_notify(wq, 1);
        } else {
            int prc = lch__sink_park(&sink, deadline);
            /* Timed out or interrupted, but picked before we could leave:
             * that is a wake-up like any other. */
            if (lch__waitq_cancel(wq, &w))
                prc = LCH_OK;
            /* Whatever woke us, look once more: a wake-up that finds
             * nothing means somebody else took the progress it announced. */
            rc = try_op(ch, a);
            if (rc == LCH_EAGAIN && prc != LCH_OK)
                return prc;
        }
        if (rc == LCH__ECLOSING)
            rc = wait_closing(ch, a, deadline);
        if (rc != LCH_EAGAIN)
            return rc;
        if (deadline >= 0 && lch__now_ns() >= deadline)
            return LCH_ETIMEDOUT;
    }
}

static int channel_op(lch_channel *ch, struct op_args *a, int64_t timeout_ns)
{
    int rc = try_op(ch, a);
    if (LCH__UNLIKELY(rc == LCH__ECLOSING))
        rc = LCH_EAGAIN; /* wait_op sees it again and never parks on it */
    if (LCH__UNLIKELY(rc == LCH_EAGAIN && timeout_ns != 0))
        rc = wait_op(ch, a, timeout_ns);
    if (rc == LCH_OK)
        after_op(ch, a);
    return rc;
}

int lch_channel_send(lch_channel *ch, lch_value v, int64_t timeout_ns)
{
    if (!ch || !lch__value_ok(&v))
        return LCH_EINVAL;
    /* One value: the engine's own claim (the ring's loop inlined with
     * n == 1; the list's, with n == 1, out of line). A try that finds no
     * room is done; anything else but success takes the general path,
     * which looks again (a failed claim changes nothing). A list never
     * waits for room: what it says is final (LCH_ECLOSED, or LCH_ENOMEM
     * with nothing claimed). */
    if (ch->capacity) {
        size_t done;
        bool wake;
        int rc = ring_send(&ch->q.ring, &v, 1, &done, &wake);
        if (LCH__LIKELY(rc == LCH_OK)) {
            if (LCH__UNLIKELY(wake))
                lch__waitq_wake_slow(&ch->recv_wq, 1);
            return LCH_OK;
        }
        if (rc == LCH_EAGAIN && timeout_ns == 0)
            return LCH_EAGAIN;
    } else {
        int rc = list_push_one(&ch->q.list, &v);
        if (LCH__LIKELY(rc == LCH_OK))
            lch__waitq_notify(&ch->recv_wq, 1);
        return rc;
    }
    struct op_args a = {OP_SEND, &v, 1, 0, false};
    return channel_op(ch, &a, timeout_ns);
}

int lch_channel_recv(lch_channel *ch, lch_value *out, int64_t timeout_ns)
{
    if (!out)
        return LCH_EINVAL;
    /* As in lch_channel_send (an empty ring's polls are what the spinning
     * side of a ping-pong runs). Acquire pairs with the release store in
     * close_now (as in try_op). */
    if (ch && !atomic_load_explicit(&ch->discarding, memory_order_acquire)) {
        int rc;
        if (ch->capacity) {
            size_t done;
            bool wake;
            rc = ring_recv(&ch->q.ring, out, 1, &done, &wake);
            if (LCH__LIKELY(rc == LCH_OK)) {
                if (LCH__UNLIKELY(wake))
                    lch__waitq_wake_slow(&ch->send_wq, 1);
                return LCH_OK;
            }
        } else {
            rc = list_pop_one(&ch->q.list, out);
            if (LCH__LIKELY(rc == LCH_OK))
                return LCH_OK; /* nobody waits for room in a list */
        }
        if (rc == LCH_EAGAIN && timeout_ns == 0) {
            *out = lch_value_none();
            return LCH_EAGAIN;
        }
    }
    *out = lch_value_none();
    if (!ch)
        return LCH_EINVAL;
    struct op_args a = {OP_RECV, out, 1, 0, false};
    int rc = channel_op(ch, &a, timeout_ns);
    if (rc != LCH_OK)
        *out = lch_value_none();
    return rc;
}

int lch_channel_send_batch(lch_channel *ch, const lch_value *v, size_t n,
                           size_t *nsent, int64_t timeout_ns)
{
    if (nsent)
        *nsent = 0;
    if (!ch || !v || !nsent || n == 0)
        return LCH_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!lch__value_ok(&v[i]))
            return LCH_EINVAL;
    /* The engines only read through vals when sending. */
    struct op_args a = {OP_SEND, (lch_value *)v, n, 0, false};
    int rc = channel_op(ch, &a, timeout_ns);
    *nsent = rc == LCH_OK ? a.done : 0;
    return rc;
}

int lch_channel_recv_batch(lch_channel *ch, lch_value *out, size_t n,
                           size_t *nrecv, int64_t timeout_ns)
{
    if (nrecv)
        *nrecv = 0;
    if (!ch || !out || !nrecv || n == 0)
        return LCH_EINVAL;
    struct op_args a = {OP_RECV, out, n, 0, false};
    int rc = channel_op(ch, &a, timeout_ns);
    *nrecv = rc == LCH_OK ? a.done : 0;
    return rc;
}

/* ---- close --------------------------------------------------------------- */

int lch_channel_close(lch_channel *ch)
{
    if (!ch)
        return LCH_EINVAL;
    bool now_closed = ch->capacity ? lch__ring_close(&ch->q.ring)
                                   : lch__list_close(&ch->q.list);
    if (now_closed) {
        /* Unconditionally (takes each queue's lock): close is rare, and a
         * waiter that queued before the close must hear of it. */
        lch__waitq_wake_slow(&ch->recv_wq, INT_MAX);
        lch__waitq_wake_slow(&ch->send_wq, INT_MAX);
    }
    return LCH_OK;
}

int lch_channel_close_now(lch_channel *ch)
{
    if (!ch)
        return LCH_EINVAL;
    lch_channel_close(ch);
    /* Release pairs with the acquire load in try_op: receivers that see the
     * flag stop taking values, so what is queued is released here once. */
    atomic_store_explicit(&ch->discarding, true, memory_order_release);
    lch_value batch[64];
    unsigned step = 0;
    for (;;) {
        size_t k = 0;
        bool wake; /* senders were all woken by the close */
        int rc = ch->capacity
                     ? lch__ring_try_recv(&ch->q.ring, batch, 64, &k, &wake)
                     : lch__list_try_recv(&ch->q.list, batch, 64, &k);
        if (rc == LCH_ECLOSED)
            break;
        if (rc == LCH__ECLOSING) {
            /* A sender claimed a slot before close and has not published
             * it yet: it will, shortly. */
            lch__backoff(&step);
            continue;
        }
        for (size_t i = 0; i < k; i++)
            lch_value_release(&batch[i]);
    }
    return LCH_OK;
}

void lch__channel_after_fork_child(lch_channel *ch)
{
    struct lch__waitq *wqs[2] = {&ch->recv_wq, &ch->send_wq};
    for (int i = 0; i < 2; i++) {
        atomic_store_explicit(&wqs[i]->waiters, 0, memory_order_relaxed);
        atomic_store_explicit(&wqs[i]->lock, 0, memory_order_relaxed);
        wqs[i]->head = wqs[i]->tail = NULL;
        wqs[i]->rhead = wqs[i]->rtail = NULL;
        /* Bounded: nobody waits here any more, so claims need not report. */
        if (wqs[i]->flag_word)
            atomic_fetch_and_explicit(wqs[i]->flag_word, ~wqs[i]->flag_bit,
                                      memory_order_relaxed);
    }
}

/* ---- snapshots ----------------------------------------------------------- */

size_t lch_channel_len(const lch_channel *ch)
{
    if (!ch)
        return 0;
    return ch->capacity ? lch__ring_len(&ch->q.ring)
                        : lch__list_len(&ch->q.list);
}

size_t lch_channel_capacity(const lch_channel *ch)
{
    return ch ? ch->capacity : 0;
}

int lch_channel_is_closed(const lch_channel *ch)
{
    if (!ch)
        return 0;
    return ch->capacity ? lch__ring_is_closed(&ch->q.ring)
                        : lch__list_is_closed(&ch->q.list);
}

uint64_t lch_channel_id(const lch_channel *ch)
{
    return ch ? ch->id : 0;
}

const char *lch_channel_name(const lch_channel *ch)
{
    return ch ? ch->name : NULL;
}

uint32_t lch_channel_user_flags(const lch_channel *ch)
{
    return ch ? ch->user_flags : 0;
}

int64_t lch_channel_user_value(const lch_channel *ch)
{
    return ch ? ch->user_value : 0;
}

/* ---- tests --------------------------------------------------------------- */

int lch_debug_channel_advance(lch_channel *ch, uint64_t n)
{
    if (!ch || !ch->capacity)
        return LCH_EINVAL;
    struct lch__ring *r = &ch->q.ring;
    /* Single-threaded by contract: relaxed throughout. */
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t pos = t & LCH__POS_MASK;
    if ((t & LCH__RING_CLOSED) || (h & LCH__POS_MASK) != pos)
        return LCH_EINVAL;
    if (n > LCH__POS_MASK - r->phys - pos)
        return LCH_E2BIG;
    pos += n;
    for (uint64_t q = pos; q < pos + r->phys; q++) /* each free for q */
        atomic_store_explicit(&slot_at(r, q)->state, seq_of(q),
                              memory_order_relaxed);
    atomic_store_explicit(&r->tail, (t & ~LCH__POS_MASK) | pos,
                          memory_order_relaxed);
    atomic_store_explicit(&r->head, (h & ~LCH__POS_MASK) | pos,
                          memory_order_relaxed);
    return LCH_OK;
}

/* Select and the fd waiter's try-or-arm calls drive try_op, after_op and
 * may_park above: compiled here for the same reason as the engines. */
#include "select.c"
