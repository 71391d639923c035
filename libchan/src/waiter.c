/* waiter.c: lch_waiter, a file descriptor an event loop can wait on for
 * channels (libchan/select.h). What a waiter holds:
 *   - an eventfd, readable while a notification is pending;
 *   - registrations (struct lch__reg, lch_impl.h), one per (channel,
 *     direction) it is armed on, each queued on that channel's wait queue
 *     like a parked thread and holding a channel reference;
 *   - the fired stack: registrations that notifiers took out of their
 *     queues, pushed under the queue's lock, popped whole by the owner;
 *   - the owner's table of its registrations by key, and its list of fired
 *     registrations collected but not yet reported.
 * Arming (queue, re-check) is in select.c, next to the channel operations.
 *
 * The protocol with notifiers, and why no wake-up is lost:
 *   notifier (under the queue lock): unlink r; inflight += 1; push r on
 *     fired; if exchange(pending, 1) == 0, write the eventfd after
 *     unlocking, else inflight -= 1; (after the write) inflight -= 1.
 *   owner (lch_waiter_take): drain the eventfd; exchange(pending, 0);
 *     collect the fired stack; report.
 * A notifier that finds pending already 1 made its exchange before the
 * owner's reset (else it would read 0), so, the two exchanges being
 * acq_rel read-modify-writes of one word, its push happens-before the
 * owner's collect, which sees it. One that reads 0 writes the fd after the
 * owner drained it, so the fd is readable again. One burst costs one write
 * however many channels fire; a registration is reported once per firing.
 * `inflight` lets lch_waiter_free close the fd only once no notifier can
 * still write to it: a notifier raises it before the owner can learn of its
 * registration (before the push, under the lock the owner's cancel takes). */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lch_impl.h"

_Atomic uint64_t lch__fd_signals = 0;

struct lch_waiter {
    /* Shared with notifiers. */
    alignas(LCH__CACHELINE) _Atomic(struct lch__reg *) fired; /* LIFO */
    _Atomic uint32_t pending;  /* 1: the fd was written since last drained */
    _Atomic uint32_t inflight; /* notifiers that may still write the fd */
    int fd;                    /* the eventfd; fixed until free */
    /* The owner's alone. */
    alignas(LCH__CACHELINE) struct lch__reg *chead, *ctail; /* collected */
    struct lch__reg **slots; /* registrations by key: open addressing */
    size_t cap;              /* 0 or a power of two */
    size_t len;
};

static struct lch__waitq *reg_wq(const struct lch__reg *r)
{
    return (r->key & 1) ? &r->ch->send_wq : &r->ch->recv_wq;
}

/* ---- the owner's table --------------------------------------------------- */

static size_t home_slot(uint64_t key, size_t cap)
{
    /* Fibonacci hashing: ids are sequential, the high bits spread them. */
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

static struct lch__reg *table_find(const lch_waiter *w, uint64_t key)
{
    if (!w->cap)
        return NULL;
    for (size_t i = home_slot(key, w->cap);; i = (i + 1) & (w->cap - 1)) {
        if (!w->slots[i] || w->slots[i]->key == key)
            return w->slots[i];
    }
}

static void table_put(struct lch__reg **slots, size_t cap, struct lch__reg *r)
{
    size_t i = home_slot(r->key, cap);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = r;
}

/* Room for one more (at most half full). LCH_ENOMEM leaves it unchanged. */
static int table_reserve(lch_waiter *w)
{
    if ((w->len + 1) * 2 <= w->cap)
        return LCH_OK;
    size_t cap = w->cap ? w->cap * 2 : 8;
    struct lch__reg **slots = lch__malloc(cap * sizeof *slots);
    if (!slots)
        return LCH_ENOMEM;
    memset(slots, 0, cap * sizeof *slots);
    for (size_t i = 0; i < w->cap; i++)
        if (w->slots[i])
            table_put(slots, cap, w->slots[i]);
    lch__free(w->slots);
    w->slots = slots;
    w->cap = cap;
    return LCH_OK;
}

static void table_remove(lch_waiter *w, const struct lch__reg *r)
{
    size_t mask = w->cap - 1, i = home_slot(r->key, w->cap);
    while (w->slots[i] != r)
        i = (i + 1) & mask;
    /* Backward-shift deletion: pull later entries of the probe run into
     * the hole unless their home slot lies cyclically in (hole, j]. */
    for (size_t j = (i + 1) & mask; w->slots[j]; j = (j + 1) & mask) {
        size_t k = home_slot(w->slots[j]->key, w->cap);
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            w->slots[i] = w->slots[j];
            i = j;
        }
    }
    w->slots[i] = NULL;
    w->len--;
}

/* ---- fired registrations ------------------------------------------------- */

/* Move the fired stack to the end of the collected list, oldest first. */
static void collect(lch_waiter *w)
{
    /* Acquire pairs with the notifiers' release pushes: their links (and
     * the inflight increments made before them) are visible. */
    struct lch__reg *top = atomic_exchange_explicit(&w->fired, NULL,
                                                    memory_order_acquire);
    struct lch__reg *oldest = NULL, *newest = top;
    while (top) {
        struct lch__reg *next = top->fnext;
        top->fnext = oldest;
        oldest = top;
        top = next;
    }
    if (!oldest)
        return;
    if (w->ctail)
        w->ctail->fnext = oldest;
    else
        w->chead = oldest;
    w->ctail = newest;
}

lch_waiter *lch__reg_fired(struct lch__wnode *node)
{
    struct lch__reg *r = (struct lch__reg *)node; /* node is the first field */
    lch_waiter *w = r->owner;
    /* Before the push: whoever learns of r (collect, or a cancel under the
     * lock we hold) then sees it. Relaxed: carried by the release below
     * and by the lock. */
    atomic_fetch_add_explicit(&w->inflight, 1, memory_order_relaxed);
    struct lch__reg *top = atomic_load_explicit(&w->fired,
                                                memory_order_relaxed);
    do {
        r->fnext = top;
        /* Release pairs with the acquire exchange in collect. */
    } while (!atomic_compare_exchange_weak_explicit(
        &w->fired, &top, r, memory_order_release, memory_order_relaxed));
    /* acq_rel pairs with the owner's exchange in lch_waiter_take (see the
     * top of this file). */
    if (atomic_exchange_explicit(&w->pending, 1, memory_order_acq_rel) == 0)
        return w;
    /* Release pairs with the acquire load in lch_waiter_free. */
    atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_release);
    return NULL;
}

void lch__waiter_signal(lch_waiter *w)
{
    uint64_t one = 1;
    ssize_t r;
    atomic_fetch_add_explicit(&lch__fd_signals, 1, memory_order_relaxed);
    do {
        r = write(w->fd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
    /* A failure could only be EAGAIN (the counter at its ceiling, which
     * `pending` rules out); the fd would be readable anyway. Release pairs
     * with the acquire load in lch_waiter_free: our write is done. */
    atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_release);
}

/* ---- registrations (for select.c) --------------------------------------- */

int lch__waiter_reg(lch_waiter *w, lch_channel *ch, bool send,
                    struct lch__reg **out)
{
    uint64_t key = lch_channel_id(ch) << 1 | (send ? 1u : 0u);
    struct lch__reg *r = table_find(w, key);
    if (r) {
        *out = r;
        return 1;
    }
    if (table_reserve(w) != LCH_OK)
        return LCH_ENOMEM;
    r = lch__malloc(sizeof *r);
    if (!r)
        return LCH_ENOMEM;
    int rc = lch_channel_ref(ch);
    if (rc != LCH_OK) {
        lch__free(r);
        return rc;
    }
    memset(r, 0, sizeof *r); /* node.sink = NULL: a registration */
    r->owner = w;
    r->ch = ch;
    r->key = key;
    table_put(w->slots, w->cap, r);
    w->len++;
    *out = r;
    return 0;
}

void lch__waiter_reg_drop(lch_waiter *w, struct lch__reg *r, bool fired)
{
    if (fired) {
        /* It is on the fired stack or already collected. (In a fork child
         * it may be neither: the queue that held it was emptied.) */
        collect(w);
        struct lch__reg *prev = NULL, *c = w->chead;
        while (c && c != r) {
            prev = c;
            c = c->fnext;
        }
        if (c) {
            if (prev)
                prev->fnext = c->fnext;
            else
                w->chead = c->fnext;
            if (w->ctail == c)
                w->ctail = prev;
        }
    }
    table_remove(w, r);
    lch_channel_unref(r->ch);
    lch__free(r);
}

/* ---- public API ------------------------------------------------------------ */

int lch_waiter_create(lch_waiter **out)
{
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    lch_waiter *w = lch__malloc_aligned(sizeof *w, LCH__CACHELINE);
    if (!w)
        return LCH_ENOMEM;
    memset(w, 0, sizeof *w);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        lch__free_aligned(w);
        return e == ENOMEM ? LCH_ENOMEM : LCH_EMFILE;
    }
    atomic_init(&w->fired, NULL);
    atomic_init(&w->pending, 0);
    atomic_init(&w->inflight, 0);
    w->fd = fd;
    *out = w;
    return LCH_OK;
}

int lch_waiter_fd(const lch_waiter *w)
{
    return w ? w->fd : -1;
}

int lch_waiter_disarm(lch_waiter *w, lch_channel *ch, int ops)
{
    if (!w || !ch || ops == 0 || (ops & ~(LCH_RECV | LCH_SEND)))
        return LCH_EINVAL;
    for (int send = 0; send < 2; send++) {
        if (!(ops & (send ? LCH_SEND : LCH_RECV)))
            continue;
        struct lch__reg *r =
            table_find(w, lch_channel_id(ch) << 1 | (uint64_t)send);
        if (r)
            lch__waiter_reg_drop(w, r, lch__waitq_cancel(reg_wq(r), &r->node));
    }
    return LCH_OK;
}

bool lch_waiter_pending(const lch_waiter *w)
{
    /* Acquire pairs with the notifier's acq_rel exchange of pending in
     * lch__reg_fired, which follows its push: seeing 1 means the push is
     * there for lch_waiter_take to collect. No system call. */
    return w && atomic_load_explicit(&w->pending, memory_order_acquire) != 0;
}

size_t lch_waiter_take(lch_waiter *w, lch_waiter_event *out, size_t n)
{
    if (!w || !out || n == 0)
        return 0;
    /* Drain first, then reset `pending`, then collect: a notifier that
     * comes after the drain either sees pending 1, and its push is
     * collected below, or sees 0 and writes the fd again. */
    uint64_t count;
    ssize_t r;
    do {
        r = read(w->fd, &count, sizeof count);
    } while (r < 0 && errno == EINTR);
    /* acq_rel: see the top of this file (pairs with lch__reg_fired). */
    atomic_exchange_explicit(&w->pending, 0, memory_order_acq_rel);
    collect(w);
    size_t k = 0;
    while (k < n && w->chead) {
        struct lch__reg *c = w->chead;
        w->chead = c->fnext;
        if (!w->chead)
            w->ctail = NULL;
        table_remove(w, c);
        out[k].ch = c->ch; /* the registration's reference, handed over */
        out[k].op = (c->key & 1) ? LCH_SEND : LCH_RECV;
        k++;
        lch__free(c);
    }
    return k;
}

void lch_waiter_free(lch_waiter *w)
{
    if (!w)
        return;
    /* Out of every queue; afterwards no notifier can fire a registration,
     * and every one that did is on the stack or collected. */
    for (size_t i = 0; i < w->cap; i++) {
        struct lch__reg *r = w->slots[i];
        if (r)
            (void)lch__waitq_cancel(reg_wq(r), &r->node);
    }
    collect(w);
    for (size_t i = 0; i < w->cap; i++) {
        struct lch__reg *r = w->slots[i];
        if (r) {
            lch_channel_unref(r->ch);
            lch__free(r);
        }
    }
    /* Wait for notifiers between firing and writing (a few instructions
     * unless preempted). Acquire pairs with their release decrements. */
    unsigned step = 0;
    while (atomic_load_explicit(&w->inflight, memory_order_acquire) != 0)
        lch__backoff(&step);
    close(w->fd);
    lch__free(w->slots);
    lch__free_aligned(w);
}
