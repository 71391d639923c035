/* select.c: waiting on several cases at once (lch_channel_select) and
 * trying-or-arming through an fd waiter (lch_waiter_recv/_send/_select).
 * Compiled as part of channel.c (included at its end): it drives that
 * file's try_op, after_op and may_park. The fd waiter object itself, its
 * registrations and its eventfd are in waiter.c.
 *
 * Blocking select, after Go's runtime/select.go:
 *   - fairness: each call looks at every case (two plain loads, no claim)
 *     and tries one chosen uniformly at random among those that look
 *     ready, then another if that look was stale: when several are ready
 *     each is equally likely, and none starves. (Go shuffles the cases and
 *     tries them in that order, which is as fair; the look makes the
 *     common case, one ready case among many, cost one try.)
 *   - waiting: one sink (a futex word on the stack) and one node per case,
 *     each queued on its channel's wait queue. A notifier marks the sink
 *     under its queue's lock; notifiers of the other queues then skip the
 *     select's nodes (and wake the next thread there instead), so a select
 *     is woken once however many of its channels move. Nodes are queued
 *     and cancelled one queue at a time: no two locks are ever held
 *     together, so there is no lock order to get wrong (Go locks every
 *     channel, in address order, for the same purpose).
 *   - wake-ups are never swallowed: a select woken by case f that returns
 *     with another case (or with an error) hands f's wake-up to the next
 *     waiter of f, as a plain receive that leaves does.
 *
 * Through a waiter: try the case; if it would block, queue the waiter's
 * registration and try again (the same re-check a parked thread makes). A
 * bounded channel whose earlier claims cannot see the registration yet
 * (may_park false), or a closed one whose last sender is still writing,
 * would make a thread back off; an event loop must not, so the
 * registration fires at once instead: the loop comes back to retry. */

/* ---- case order ----------------------------------------------------------- */

/* xorshift64, one state per thread, seeded from the clock and the address
 * of the state (threads differ in both). Quality hardly matters: this only
 * has to keep one channel from always being chosen first. */
static _Thread_local uint64_t sel_rng;

static uint64_t sel_rand(void)
{
    uint64_t x = sel_rng;
    if (LCH__UNLIKELY(x == 0)) {
        x = (uint64_t)lch__now_ns() ^ (uint64_t)(uintptr_t)&sel_rng ^
            UINT64_C(0x9E3779B97F4A7C15);
        if (x == 0)
            x = 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sel_rng = x;
    return x;
}

/* Index of a uniformly chosen set bit of m (m != 0). */
static size_t sel_pick(uint64_t m)
{
    if (m & (m - 1)) { /* more than one: popcount only then (without
                          * -mpopcnt it is a libgcc call) */
        unsigned k = (unsigned)__builtin_popcountll(m);
        /* multiply-shift: a number in [0, k) without a division */
        for (uint64_t j = ((sel_rand() >> 32) * k) >> 32; j > 0; j--)
            m &= m - 1;
    }
    return (size_t)__builtin_ctzll(m);
}

/* Could this case proceed now? Plain loads, no claim and no fence: a hint
 * for choosing what to try, which try_op then settles (it may be stale
 * either way). A closed channel looks ready: its case completes with
 * LCH_ECLOSED (close_now closes before discarding, so that covers it). */
static bool case_looks_ready(const lch_channel *ch, enum op op)
{
    if (ch->capacity) {
        const struct lch__ring *r = &ch->q.ring;
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        if (t & CLOSED_BIT)
            return true;
        if (op == OP_SEND) /* the next slot is free (cap 1 also needs head) */
            return seq_is(atomic_load_explicit(&slot_at(r, t & POS)->state,
                                               memory_order_relaxed),
                          t & POS);
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed) &
                     POS;
        return seq_is(atomic_load_explicit(&slot_at(r, h)->state,
                                           memory_order_relaxed),
                      h + 1);
    }
    if (op == OP_SEND)
        return true; /* unbounded: never full */
    uint64_t h = atomic_load_explicit(&ch->q.list.head.index,
                                      memory_order_relaxed);
    if (h & MARK) /* head and tail in different blocks: not empty */
        return true;
    /* Only now the tail's line, which a busy producer keeps writing. */
    uint64_t t = atomic_load_explicit(&ch->q.list.tail.index,
                                      memory_order_relaxed);
    return (h >> SHIFT) != (t >> SHIFT) || (t & MARK);
}

/* ---- one select call -------------------------------------------------------- */

struct sel {
    lch_select_case *cases;
    size_t n;
};

static enum op case_op(const lch_select_case *c)
{
    return c->op == LCH_SEND ? OP_SEND : OP_RECV;
}

static struct lch__waitq *op_wq(lch_channel *ch, enum op op)
{
    return op == OP_SEND ? &ch->send_wq : &ch->recv_wq;
}

static int sel_init(struct sel *s, lch_select_case *cases, size_t n)
{
    if (!cases || n == 0)
        return LCH_EINVAL;
    if (n > LCH_SELECT_MAX)
        return LCH_E2BIG;
    for (size_t i = 0; i < n; i++)
        if (!cases[i].ch ||
            (cases[i].op != LCH_RECV && cases[i].op != LCH_SEND) ||
            (cases[i].op == LCH_SEND && !lch__value_ok(&cases[i].value)))
            return LCH_EINVAL;
    s->cases = cases;
    s->n = n;
    for (size_t i = 0; i < n; i++)
        if (cases[i].op == LCH_RECV)
            cases[i].value = lch_value_none();
    return LCH_OK;
}

/* Try the cases that look ready, each time one chosen uniformly among
 * those left, until one proceeds. LCH_OK (after telling the other side)
 * or an error, with *k the case; LCH_EAGAIN if none could proceed, with
 * *closing set if one is closed with a value still being written (never
 * park on that: see wait_closing). Called after queueing on every case
 * too: lch__waitq_enqueue ends with a seq_cst fence, which orders the
 * looks after it as the notification protocol needs (wait.c). */
static int sel_poll(struct sel *s, size_t *k, bool *closing)
{
    uint64_t maybe = 0;
    if (s->n == 1) {
        maybe = 1;
    } else {
        for (size_t i = 0; i < s->n; i++)
            if (case_looks_ready(s->cases[i].ch, case_op(&s->cases[i])))
                maybe |= (uint64_t)1 << i;
    }
    while (maybe) {
        size_t i = sel_pick(maybe);
        maybe &= ~((uint64_t)1 << i);
        lch_channel *ch = s->cases[i].ch;
        struct op_args a = {case_op(&s->cases[i]), &s->cases[i].value, 1, 0,
                            false};
        int rc = try_op(ch, &a);
        if (rc == LCH_EAGAIN)
            continue; /* the look was stale */
        if (rc == LCH__ECLOSING) {
            *closing = true;
            continue;
        }
        if (rc == LCH_OK)
            after_op(ch, &a);
        *k = i;
        return rc;
    }
    return LCH_EAGAIN;
}

/* Out of line, like wait_op: spin, then park on every case's queue. */
static LCH__NOINLINE int sel_wait(struct sel *s, int64_t timeout_ns,
                                  size_t *k)
{
    int64_t now = lch__now_ns();
    int64_t deadline = deadline_after(now, timeout_ns);
    int64_t spin_ns = INT64_MAX;
    for (size_t i = 0; i < s->n; i++)
        if (s->cases[i].ch->spin_ns < spin_ns)
            spin_ns = s->cases[i].ch->spin_ns;
    bool closing = false;
    int rc;

    if (spin_ns > 0) {
        int64_t spin_end = spin_end_after(now, spin_ns, deadline);
        for (unsigned i = 1;; i++) {
            lch__cpu_relax();
            rc = sel_poll(s, k, &closing);
            if (rc != LCH_EAGAIN)
                return rc;
            if ((i & 63) == 0 && lch__now_ns() >= spin_end)
                break;
        }
    }

    unsigned step = 0;
    for (;;) {
        struct lch__sink sink;
        struct lch__wnode nodes[LCH_SELECT_MAX];
        uint64_t flag_pos[LCH_SELECT_MAX];
        atomic_init(&sink.state, LCH__S_QUEUED);
        for (size_t i = 0; i < s->n; i++) {
            nodes[i] = (struct lch__wnode){.sink = &sink,
                                           .tag = (uint32_t)i};
            flag_pos[i] = lch__waitq_enqueue(
                op_wq(s->cases[i].ch, case_op(&s->cases[i])), &nodes[i]);
        }
        closing = false;
        rc = sel_poll(s, k, &closing);
        bool park = rc == LCH_EAGAIN && !closing;
        for (size_t i = 0; park && i < s->n; i++)
            park = may_park(s->cases[i].ch, case_op(&s->cases[i]),
                            flag_pos[i]);
        int prc = LCH_OK;
        if (park)
            prc = lch__sink_park(&sink, deadline);
        /* Leave every queue. Once a queue's lock has been taken to cancel,
         * no notifier of that queue touches the sink: after the loop, its
         * state is final. */
        for (size_t i = 0; i < s->n; i++)
            (void)lch__waitq_cancel(
                op_wq(s->cases[i].ch, case_op(&s->cases[i])), &nodes[i]);
        /* Acquire pairs with the notifier's CAS in sink_mark (wait.c). */
        uint32_t st = atomic_load_explicit(&sink.state, memory_order_acquire);
        bool signalled = (st & LCH__S_SIGNALED) != 0;
        size_t f = LCH__S_TAG(st);
        if (park) {
            /* Whatever woke us, look again. */
            closing = false;
            rc = sel_poll(s, k, &closing);
        }
        /* A wake-up from case f that we do not return with goes on to f's
         * next waiter. After parking, finding nothing means somebody else
         * took what f announced. Without parking, our poll may predate
         * what it announced, so it is handed on in any case (as wait_op
         * does). */
        if (signalled && (!park || (rc != LCH_EAGAIN && *k != f)))
            lch__waitq_notify(op_wq(s->cases[f].ch, case_op(&s->cases[f])),
                              1);
        if (rc != LCH_EAGAIN)
            return rc;
        if (park && prc != LCH_OK && !signalled)
            return prc; /* LCH_ETIMEDOUT or LCH_EINTR, nothing moved */
        if (!park)
            lch__backoff(&step); /* a peer is mid-operation */
        if (deadline >= 0 && lch__now_ns() >= deadline)
            return LCH_ETIMEDOUT;
    }
}

/* The result of a select: the case that completed (a send's value now
 * belongs to the channel), or none. */
static int sel_finish(struct sel *s, int rc, size_t k, size_t *index)
{
    if (rc == LCH_OK || rc == LCH_ECLOSED || rc == LCH_ENOMEM) {
        *index = k;
        if (rc == LCH_OK && s->cases[k].op == LCH_SEND)
            s->cases[k].value = lch_value_none();
    }
    return rc;
}

/* What both selects do first: check the arguments, then try once. Returns
 * LCH_EAGAIN (nothing could proceed: go on), else the result to report
 * (sel_finish has set *index, or the arguments were bad). */
static int sel_start(struct sel *s, lch_select_case *cases, size_t n,
                     size_t *index, size_t *k)
{
    if (!index)
        return LCH_EINVAL;
    *index = LCH_SELECT_NONE;
    int rc = sel_init(s, cases, n);
    if (rc != LCH_OK)
        return rc;
    bool closing = false;
    rc = sel_poll(s, k, &closing);
    return rc == LCH_EAGAIN ? rc : sel_finish(s, rc, *k, index);
}

int lch_channel_select(lch_select_case *cases, size_t n, size_t *index,
                       int64_t timeout_ns)
{
    struct sel s;
    size_t k = 0;
    int rc = sel_start(&s, cases, n, index, &k);
    if (rc != LCH_EAGAIN || timeout_ns == 0)
        return rc;
    rc = sel_wait(&s, timeout_ns, &k);
    return sel_finish(&s, rc, k, index);
}

/* ---- through an fd waiter --------------------------------------------------- */

/* The case would block: arm w on it and look again. LCH_EAGAIN when armed
 * (or already armed), else what the second look found (the registration
 * is then withdrawn). */
static int waiter_arm(lch_waiter *w, lch_channel *ch, struct op_args *a)
{
    struct lch__reg *reg;
    int rc = lch__waiter_reg(w, ch, a->op == OP_SEND, &reg);
    if (rc == 1)
        return LCH_EAGAIN; /* queued or fired already: the fd will tell */
    if (rc < 0)
        return rc;
    struct lch__waitq *wq = op_wq(ch, a->op);
    uint64_t flag_pos = lch__waitq_enqueue(wq, &reg->node);
    rc = try_op(ch, a);
    if (rc == LCH_EAGAIN && may_park(ch, a->op, flag_pos))
        return LCH_EAGAIN;
    if (rc == LCH_EAGAIN || rc == LCH__ECLOSING) {
        /* A thread would back off here; a loop must not block: readable
         * now, so that it comes back to retry. */
        lch__waitq_fire(wq, &reg->node);
        return LCH_EAGAIN;
    }
    /* Not needed after all. No wake-up to hand on: every notification
     * reaches every registration and every parked thread's share. */
    lch__waiter_reg_drop(w, reg, lch__waitq_cancel(wq, &reg->node));
    if (rc == LCH_OK)
        after_op(ch, a);
    return rc;
}

static int waiter_case(lch_waiter *w, lch_channel *ch, struct op_args *a)
{
    int rc = try_op(ch, a);
    if (LCH__LIKELY(rc == LCH_OK)) {
        after_op(ch, a);
        return LCH_OK;
    }
    if (rc != LCH_EAGAIN && rc != LCH__ECLOSING)
        return rc;
    return waiter_arm(w, ch, a);
}

int lch_waiter_recv(lch_waiter *w, lch_channel *ch, lch_value *out)
{
    if (!out)
        return LCH_EINVAL;
    *out = lch_value_none();
    if (!w || !ch)
        return LCH_EINVAL;
    struct op_args a = {OP_RECV, out, 1, 0, false};
    int rc = waiter_case(w, ch, &a);
    if (rc != LCH_OK)
        *out = lch_value_none();
    return rc;
}

int lch_waiter_send(lch_waiter *w, lch_channel *ch, lch_value v)
{
    if (!w || !ch || !lch__value_ok(&v))
        return LCH_EINVAL;
    struct op_args a = {OP_SEND, &v, 1, 0, false};
    return waiter_case(w, ch, &a);
}

int lch_waiter_select(lch_waiter *w, lch_select_case *cases, size_t n,
                      size_t *index)
{
    if (!w) {
        if (index)
            *index = LCH_SELECT_NONE;
        return LCH_EINVAL;
    }
    struct sel s;
    size_t k = 0;
    int rc = sel_start(&s, cases, n, index, &k);
    if (rc != LCH_EAGAIN)
        return rc;
    for (size_t j = 0; rc == LCH_EAGAIN && j < n; j++) {
        struct op_args a = {case_op(&cases[j]), &cases[j].value, 1, 0, false};
        k = j;
        rc = waiter_arm(w, cases[j].ch, &a);
    }
    if (rc == LCH_EOVERFLOW) {
        *index = k;
        return rc;
    }
    return sel_finish(&s, rc, k, index);
}
