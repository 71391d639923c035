/* buffer.c: immutable, refcounted shared buffers (libchan/buffer.h) and the
 * process-wide cache of large blocks behind them.
 *
 * A buffer is a header (struct lch_buffer, an lch_object of type
 * LCH_TYPE_BUFFER) plus bytes held in one of five ways (enum buf_kind):
 *
 *   INLINE   small (< LCH_BUFFER_CACHE_MIN): header and data in ONE block
 *            from the hook, data at the first 64-byte boundary after the
 *            header, so lch_buffer_new_copy of a small payload is one malloc.
 *   OWNED    small data in its own hook block, 64-byte aligned inside it:
 *            only made by lch_buffer_resize (the header of a buffer cannot
 *            move, so an INLINE buffer that outgrows its block moves its
 *            bytes out; the header block's data area then stays unused).
 *   LARGE    data in a block of a size class, taken from / returned to the
 *            cache below; the header is a separate small block.
 *   ADOPTED  the caller's memory; release(ctx, data, len) runs once, from
 *            whichever thread drops the last reference.
 *   SLICE    a window into a root buffer (never itself a slice) and one
 *            counted reference to it, dropped when the slice dies.
 *
 * Blocks libchan allocates are requested with LCH_BUFFER_ALIGN - 1 bytes of
 * slack and the data starts at the first aligned address in them: that works
 * whatever (malloc-conforming) alignment the hook returns, and lets resize
 * realloc an OWNED block and then move the bytes to the new block's aligned
 * offset (realloc keeps the bytes, not their alignment).
 *
 * The large-block cache. glibc maps requests above its mmap threshold and
 * unmaps them on free, so a freshly mapped 1 MiB costs 257 page faults, ~24x
 * the memcpy into it (bench/bench_buffer.cpp). Its threshold adapts upward
 * after a mapped block is freed, which hides this in a same-size loop, but
 * only up to 32 MiB, not when an embedder fixes it (mallopt,
 * MALLOC_MMAP_THRESHOLD_), not before it has adapted, and not for other
 * allocators behind the hook. Blocks of LCH_BUFFER_CACHE_MIN bytes and more
 * are therefore rounded up to a size class and kept when their buffer dies:
 *   - size classes: 64 KiB, then 64 per power of two (2^p * 65/64, 66/64,
 *     ..., 128/64): less than 1/64 of a request is padding, power-of-two
 *     sizes (1 MiB, 16 MiB) fit exactly, and a class index is computed with
 *     one clz. Fine classes keep a buffer that stays alive (a backlog of
 *     queued values, each holding one) within 5% of its length, page
 *     rounding of a mapped block included (< 1/64 + 4 KiB, and 4 KiB is 1/32
 *     of the smallest mapped block, 128 KiB); four classes per power of two
 *     cost up to 25%. The price is that only equal-sized requests (within
 *     1/64) share idle blocks, which is what repeated messages of one size
 *     do. A block whose class exceeds the cache limit is never cacheable, so
 *     it is allocated at its exact size instead (a huge buffer pays no
 *     padding).
 *   - policy: idle blocks of a class are reused newest first (their pages are
 *     the likeliest to be warm); the cache holds at most `limit` idle bytes
 *     (class capacities) and evicts the least recently freed block of any
 *     class when a free would exceed it, so a workload that changes sizes
 *     does not leave stale blocks pinned. A lookup takes only its exact class.
 *   - lock: one pthread mutex over all of the cache state, taken once per
 *     large allocation and once per large free, never around a system call
 *     or the allocator (evicted blocks are freed after unlocking). Its
 *     lock/unlock pairs order every access to the fields of `cache`; a
 *     memcpy of 64 KiB or more dwarfs an uncontended lock. pthread_atfork
 *     handlers keep a fork() that races with it from leaving it held in the
 *     child.
 *   - allocator: idle blocks belong to the allocator installed when they
 *     were made (cache.owner). If another one has been installed since
 *     (lch_set_allocator), the next cache operation frees them through the
 *     allocator they came from instead of reusing them.
 *
 * Process-global state: `cache` (below), guarded by cache.lock. */
#include <pthread.h>
#include <string.h>

#include "lch_base.h"
#include "libchan/buffer.h"

/* ---- layout -------------------------------------------------------------- */

enum buf_kind {
    BUF_INLINE = 0,
    BUF_OWNED = 1,
    BUF_LARGE = 2,
    BUF_ADOPTED = 3,
    BUF_SLICE = 4
};

/* Class index of a block that is not class-sized (allocated exactly). */
#define NO_CLASS UINT32_MAX

struct lch_buffer {
    lch_object hdr;      /* LCH_TYPE_BUFFER; LCH__OBJ_SELF_FREE */
    unsigned char *data; /* first byte; never NULL (see empty_bytes) */
    size_t len;          /* bytes at data */
    uint8_t kind;        /* enum buf_kind; changes only in resize */
    bool writable;       /* made by new_uninit: resize allowed until shared */
    /* Set on a root by lch_buffer_slice (relaxed: see lch_buffer_resize). */
    _Atomic uint8_t sliced;
    union {
        struct {              /* INLINE, OWNED, LARGE */
            void *raw;        /* hook block (OWNED, LARGE; NULL if INLINE) */
            size_t cap;       /* bytes usable at data */
            uint32_t cls;     /* size class (LARGE) or NO_CLASS */
        } own;
        struct {                       /* ADOPTED */
            lch_buffer_release_fn fn;  /* may be NULL */
            void *ctx;                 /* passed to fn */
            const void *data;          /* as given (data may differ: NULL) */
        } release;
        lch_buffer *root; /* SLICE: the referenced root */
    } u;
};

/* Room to align data inside a block from the hook. */
#define BUF_SLACK ((size_t)LCH_BUFFER_ALIGN - 1)

/* The data of zero-length adopted buffers made from a NULL pointer, so that
 * lch_buffer_data is NULL only for a NULL buffer. */
static alignas(LCH_BUFFER_ALIGN) const unsigned char empty_bytes[1];

static void buffer_destroy(lch_object *obj);

static const lch_type lch__buffer_type = {LCH_TYPE_BUFFER, "buffer",
                                          buffer_destroy};

/* First LCH_BUFFER_ALIGN boundary at or after p. */
static inline unsigned char *align_up(void *p)
{
    uintptr_t mis = (uintptr_t)p & (LCH_BUFFER_ALIGN - 1);
    return (unsigned char *)p + (mis ? LCH_BUFFER_ALIGN - mis : 0);
}

/* ---- size classes -------------------------------------------------------- */

#define CLASS_MIN_SHIFT 16 /* LCH_BUFFER_CACHE_MIN == 1 << 16 */
#define CLASS_SUB_SHIFT 6  /* 64 classes per power of two */
#define CLASS_SUB (1u << CLASS_SUB_SHIFT)
/* Up to class_of(LCH_BUFFER_MAX_LEN): 2^63 on 64-bit, 2^31 on 32-bit. */
#define NCLASSES                                                               \
    ((sizeof(size_t) * 8 - 1 - CLASS_MIN_SHIFT) * CLASS_SUB + 1)

_Static_assert(LCH_BUFFER_CACHE_MIN == (size_t)1 << CLASS_MIN_SHIFT,
               "size classes start at LCH_BUFFER_CACHE_MIN");

static inline unsigned floor_log2(size_t x)
{
    return (unsigned)(sizeof(unsigned long long) * 8 - 1) -
           (unsigned)__builtin_clzll((unsigned long long)x);
}

/* Class of a request of s >= LCH_BUFFER_CACHE_MIN bytes; *cap gets the
 * class's capacity (>= s). Class 0 is 64 KiB; above it, for 2^p < s <=
 * 2^(p+1), the capacities are m * 2^(p-6) for m = 65..128. */
static uint32_t class_of(size_t s, size_t *cap)
{
    if (s <= LCH_BUFFER_CACHE_MIN) {
        *cap = LCH_BUFFER_CACHE_MIN;
        return 0;
    }
    unsigned p = floor_log2(s - 1); /* 2^p < s <= 2^(p+1), p >= 16 */
    size_t step = (size_t)1 << (p - CLASS_SUB_SHIFT);
    size_t m = (s - 1) / step + 1; /* CLASS_SUB + 1 .. 2 * CLASS_SUB */
    *cap = m * step;
    return (uint32_t)((p - CLASS_MIN_SHIFT) * CLASS_SUB + (m - CLASS_SUB));
}

static size_t class_cap(uint32_t cls)
{
    if (cls == 0)
        return LCH_BUFFER_CACHE_MIN;
    unsigned p = CLASS_MIN_SHIFT + (cls - 1) / CLASS_SUB;
    size_t m = CLASS_SUB + 1 + (cls - 1) % CLASS_SUB;
    return m << (p - CLASS_SUB_SHIFT);
}

/* ---- the large-block cache ----------------------------------------------- */

/* Written into the first bytes of an idle block's data area. */
struct idle_block {
    struct idle_block *cls_next, *cls_prev; /* same class, newest first */
    struct idle_block *newer, *older;       /* every class, by free time */
    void *raw;                              /* what the hook returned */
    uint32_t cls;                           /* size class */
};

_Static_assert(sizeof(struct idle_block) <= LCH_BUFFER_CACHE_MIN,
               "an idle block holds its own links");

static struct {
    pthread_mutex_t lock; /* guards everything below */
    size_t limit;         /* most idle bytes kept */
    size_t idle_bytes;    /* sum of class capacities of idle blocks */
    size_t idle_blocks;
    uint64_t hits, misses;
    struct idle_block *newest, *oldest;     /* age list */
    struct idle_block *by_class[NCLASSES];  /* per-class lists' heads */
    lch_allocator owner; /* made the idle blocks (when idle_blocks > 0) */
} cache = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .limit = LCH_BUFFER_CACHE_DEFAULT_LIMIT,
};

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* fork(): the forking thread holds the lock across fork, so the child gets a
 * consistent cache whatever the parent's other threads were doing, and
 * unlocks it as the same (only) thread. */
static void cache_prefork(void) { pthread_mutex_lock(&cache.lock); }
static void cache_postfork(void) { pthread_mutex_unlock(&cache.lock); }

static void cache_init_once(void)
{
    /* On failure (ENOMEM) fork safety is lost, nothing else. */
    (void)pthread_atfork(cache_prefork, cache_postfork, cache_postfork);
}

static void cache_lock(void)
{
    pthread_once(&cache_once, cache_init_once);
    pthread_mutex_lock(&cache.lock);
}

static void cache_unlock(void) { pthread_mutex_unlock(&cache.lock); }

static bool same_allocator(const lch_allocator *a, const lch_allocator *b)
{
    return a->malloc == b->malloc && a->realloc == b->realloc &&
           a->free == b->free && a->ctx == b->ctx;
}

static void unlink_locked(struct idle_block *ib)
{
    if (ib->cls_prev)
        ib->cls_prev->cls_next = ib->cls_next;
    else
        cache.by_class[ib->cls] = ib->cls_next;
    if (ib->cls_next)
        ib->cls_next->cls_prev = ib->cls_prev;
    if (ib->newer)
        ib->newer->older = ib->older;
    else
        cache.newest = ib->older;
    if (ib->older)
        ib->older->newer = ib->newer;
    else
        cache.oldest = ib->newer;
    cache.idle_bytes -= class_cap(ib->cls);
    cache.idle_blocks--;
}

/* Evict the oldest idle blocks until at most `keep` idle bytes remain; they
 * are chained on *out (through cls_next) for the caller to free, unlocked,
 * through cache.owner. */
static void evict_locked(size_t keep, struct idle_block **out)
{
    while (cache.idle_bytes > keep) {
        struct idle_block *ib = cache.oldest;
        unlink_locked(ib);
        ib->cls_next = *out;
        *out = ib;
    }
}

/* Drop every idle block if they came from an allocator other than `cur`;
 * `cur` owns the cache from now on. *stale_alloc gets the old owner. */
static void check_owner_locked(const lch_allocator *cur,
                               struct idle_block **stale,
                               lch_allocator *stale_alloc)
{
    if (cache.idle_blocks && !same_allocator(&cache.owner, cur)) {
        *stale_alloc = cache.owner;
        evict_locked(0, stale);
    }
    cache.owner = *cur;
}

static void free_chain(struct idle_block *ib, const lch_allocator *a)
{
    while (ib) {
        struct idle_block *next = ib->cls_next;
        a->free(a->ctx, ib->raw);
        ib = next;
    }
}

/* Storage for a LARGE buffer of `len` >= LCH_BUFFER_CACHE_MIN bytes: a cached
 * block of len's class, or a new one. Fills raw/data/cap/cls; false on
 * out-of-memory. */
static bool large_alloc(size_t len, void **raw, unsigned char **data,
                        size_t *cap, uint32_t *cls)
{
    size_t ccap;
    uint32_t c = class_of(len, &ccap);
    lch_allocator cur, stale_alloc;
    struct idle_block *stale = NULL, *ib = NULL;
    bool cacheable;

    lch_get_allocator(&cur);
    cache_lock();
    check_owner_locked(&cur, &stale, &stale_alloc);
    cacheable = ccap <= cache.limit;
    if (cacheable && (ib = cache.by_class[c]) != NULL) {
        unlink_locked(ib);
        cache.hits++;
    } else {
        cache.misses++;
    }
    cache_unlock();
    free_chain(stale, &stale_alloc);

    if (ib) {
        *raw = ib->raw;
        *data = (unsigned char *)ib;
        *cap = ccap;
        *cls = c;
        return true;
    }
    if (!cacheable) { /* exact size: the block will never be cached */
        ccap = len;
        c = NO_CLASS;
    }
    void *r = lch__malloc(ccap + BUF_SLACK);
    if (!r)
        return false;
    *raw = r;
    *data = align_up(r);
    *cap = ccap;
    *cls = c;
    return true;
}

/* Give back a LARGE buffer's block: into the cache if its class fits under
 * the limit, otherwise to the allocator. */
static void large_free(void *raw, unsigned char *data, uint32_t cls)
{
    if (cls == NO_CLASS) {
        lch__free(raw);
        return;
    }
    lch_allocator cur, stale_alloc;
    struct idle_block *stale = NULL, *evicted = NULL;
    size_t cap = class_cap(cls);
    bool kept = false;

    lch_get_allocator(&cur);
    cache_lock();
    check_owner_locked(&cur, &stale, &stale_alloc);
    if (cap <= cache.limit) {
        struct idle_block *ib = (struct idle_block *)(void *)data;
        ib->raw = raw;
        ib->cls = cls;
        ib->cls_prev = NULL;
        ib->cls_next = cache.by_class[cls];
        if (ib->cls_next)
            ib->cls_next->cls_prev = ib;
        cache.by_class[cls] = ib;
        ib->newer = NULL;
        ib->older = cache.newest;
        if (ib->older)
            ib->older->newer = ib;
        else
            cache.oldest = ib;
        cache.newest = ib;
        cache.idle_bytes += cap;
        cache.idle_blocks++;
        kept = true;
        /* The block just added is the newest, and cap <= limit: it stays. */
        evict_locked(cache.limit, &evicted);
    }
    cache_unlock();
    free_chain(stale, &stale_alloc);
    free_chain(evicted, &cur);
    if (!kept)
        lch__free(raw);
}

void lch_buffer_cache_set_limit(size_t bytes)
{
    lch_allocator cur, stale_alloc;
    struct idle_block *stale = NULL, *evicted = NULL;

    lch_get_allocator(&cur);
    cache_lock();
    check_owner_locked(&cur, &stale, &stale_alloc);
    cache.limit = bytes;
    evict_locked(bytes, &evicted);
    cache_unlock();
    free_chain(stale, &stale_alloc);
    free_chain(evicted, &cur);
}

void lch_buffer_cache_trim(void)
{
    lch_allocator owner;
    struct idle_block *evicted = NULL;

    cache_lock();
    owner = cache.owner;
    evict_locked(0, &evicted);
    cache_unlock();
    free_chain(evicted, &owner);
}

void lch_buffer_cache_stats_get(lch_buffer_cache_stats *out)
{
    if (!out)
        return;
    cache_lock();
    out->idle_bytes = cache.idle_bytes;
    out->idle_blocks = cache.idle_blocks;
    out->hits = cache.hits;
    out->misses = cache.misses;
    cache_unlock();
}

/* ---- creation ------------------------------------------------------------ */

/* Storage outside a header: what store_alloc hands back. */
struct store {
    uint8_t kind;        /* BUF_OWNED or BUF_LARGE */
    unsigned char *data; /* 64-byte aligned, inside raw */
    void *raw;           /* the hook's block */
    size_t cap;          /* bytes usable at data */
    uint32_t cls;        /* size class (LARGE) or NO_CLASS */
};

/* Storage for `len` bytes: OWNED if small, LARGE if not. false on
 * out-of-memory. */
static bool store_alloc(struct store *st, size_t len)
{
    if (len >= LCH_BUFFER_CACHE_MIN) {
        st->kind = BUF_LARGE;
        return large_alloc(len, &st->raw, &st->data, &st->cap, &st->cls);
    }
    st->raw = lch__malloc(len + BUF_SLACK);
    if (!st->raw)
        return false;
    st->kind = BUF_OWNED;
    st->data = align_up(st->raw);
    st->cap = len;
    st->cls = NO_CLASS;
    return true;
}

/* Make b use st. */
static void store_attach(lch_buffer *b, const struct store *st)
{
    b->kind = st->kind;
    b->data = st->data;
    b->u.own.raw = st->raw;
    b->u.own.cap = st->cap;
    b->u.own.cls = st->cls;
}

/* Free b's OWNED or LARGE storage. */
static void store_free(lch_buffer *b)
{
    if (b->kind == BUF_LARGE)
        large_free(b->u.own.raw, b->data, b->u.own.cls);
    else
        lch__free(b->u.own.raw);
}

/* A header and storage for len bytes (len <= LCH_BUFFER_MAX_LEN), not yet an
 * object; NULL on out-of-memory. */
static lch_buffer *buffer_alloc(size_t len)
{
    lch_buffer *b;
    if (len < LCH_BUFFER_CACHE_MIN) {
        b = lch__malloc(sizeof *b + BUF_SLACK + len);
        if (!b)
            return NULL;
        memset(b, 0, sizeof *b);
        b->kind = BUF_INLINE;
        b->data = align_up(b + 1);
        b->u.own.cap = len;
        b->u.own.cls = NO_CLASS;
    } else {
        b = lch__malloc(sizeof *b);
        if (!b)
            return NULL;
        memset(b, 0, sizeof *b);
        struct store st;
        if (!store_alloc(&st, len)) {
            lch__free(b);
            return NULL;
        }
        store_attach(b, &st);
    }
    b->len = len;
    return b;
}

static void buffer_destroy(lch_object *obj)
{
    lch_buffer *b = (lch_buffer *)obj;
    switch ((enum buf_kind)b->kind) {
    case BUF_INLINE:
        break;
    case BUF_OWNED:
    case BUF_LARGE:
        store_free(b);
        break;
    case BUF_ADOPTED:
        if (b->u.release.fn)
            b->u.release.fn(b->u.release.ctx, (void *)b->u.release.data,
                            b->len);
        break;
    case BUF_SLICE: {
        lch_buffer *root = b->u.root;
        lch__free(b);
        /* The root is never a slice: this recurses at most once. */
        lch_object_unref(&root->hdr);
        return;
    }
    }
    lch__free(b);
}

int lch_buffer_new_copy(lch_buffer **out, const void *data, size_t len)
{
    if (out && !data && len) {
        *out = NULL;
        return LCH_EINVAL;
    }
    void *dst;
    int rc = lch_buffer_new_uninit(out, len, &dst);
    if (rc != LCH_OK)
        return rc;
    if (len)
        memcpy(dst, data, len);
    (*out)->writable = false; /* a copy is never resized */
    return LCH_OK;
}

int lch_buffer_new_uninit(lch_buffer **out, size_t len, void **data)
{
    if (data)
        *data = NULL;
    if (out)
        *out = NULL;
    if (!out || !data)
        return LCH_EINVAL;
    if (len > LCH_BUFFER_MAX_LEN)
        return LCH_E2BIG;
    lch_buffer *b = buffer_alloc(len);
    if (!b)
        return LCH_ENOMEM;
    b->writable = true;
    lch__object_init(&b->hdr, &lch__buffer_type, LCH__OBJ_SELF_FREE);
    *out = b;
    *data = b->data;
    return LCH_OK;
}

int lch_buffer_adopt(lch_buffer **out, const void *data, size_t len,
                     lch_buffer_release_fn release, void *ctx)
{
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    if (!data && len)
        return LCH_EINVAL;
    if (len > LCH_BUFFER_MAX_LEN)
        return LCH_E2BIG;
    lch_buffer *b = lch__malloc(sizeof *b);
    if (!b)
        return LCH_ENOMEM;
    memset(b, 0, sizeof *b);
    b->kind = BUF_ADOPTED;
    b->data = data ? (unsigned char *)data : (unsigned char *)empty_bytes;
    b->len = len;
    b->u.release.fn = release;
    b->u.release.ctx = ctx;
    b->u.release.data = data;
    lch__object_init(&b->hdr, &lch__buffer_type, LCH__OBJ_SELF_FREE);
    *out = b;
    return LCH_OK;
}

int lch_buffer_slice(lch_buffer **out, lch_buffer *parent, size_t offset,
                     size_t len)
{
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    /* Overflow-safe: offset + len is never computed. */
    if (!parent || offset > parent->len || len > parent->len - offset)
        return LCH_EINVAL;
    lch_buffer *root = parent->kind == BUF_SLICE ? parent->u.root : parent;
    lch_buffer *s = lch__malloc(sizeof *s);
    if (!s)
        return LCH_ENOMEM;
    int rc = lch_object_ref(&root->hdr);
    if (rc != LCH_OK) {
        lch__free(s);
        return rc;
    }
    /* Relaxed: resize reads it only after an acquire load of the count that
     * reads this slice's (release) unref of the root, or later. */
    atomic_store_explicit(&root->sliced, 1, memory_order_relaxed);
    memset(s, 0, sizeof *s);
    s->kind = BUF_SLICE;
    s->data = parent->data + offset;
    s->len = len;
    s->u.root = root;
    lch__object_init(&s->hdr, &lch__buffer_type, LCH__OBJ_SELF_FREE);
    *out = s;
    return LCH_OK;
}

/* ---- resize -------------------------------------------------------------- */

/* OWNED -> OWNED: realloc, then move the bytes to the new block's aligned
 * offset if it differs from the old one. */
static int resize_owned(lch_buffer *b, size_t len)
{
    size_t old_off = (size_t)(b->data - (unsigned char *)b->u.own.raw);
    unsigned char *raw = lch__realloc(b->u.own.raw, len + BUF_SLACK);
    if (!raw)
        return LCH_ENOMEM; /* the old block is untouched */
    unsigned char *data = align_up(raw);
    size_t keep = b->len < len ? b->len : len;
    /* old_off + keep <= BUF_SLACK + len: inside what realloc preserved. */
    if ((size_t)(data - raw) != old_off)
        memmove(data, raw + old_off, keep);
    b->u.own.raw = raw;
    b->u.own.cap = len;
    b->data = data;
    b->len = len;
    return LCH_OK;
}

int lch_buffer_resize(lch_buffer *b, size_t len, void **data)
{
    if (!b || !data)
        return LCH_EINVAL;
    /* Acquire pairs with the release half of every other holder's unref (and
     * of a dead slice's unref of this root): reading 1 means their
     * accesses, and the `sliced` store of any slice made meanwhile, happen
     * before this resize. */
    if (!b->writable || b->kind == BUF_ADOPTED || b->kind == BUF_SLICE ||
        atomic_load_explicit(&b->hdr.refcount, memory_order_acquire) != 1 ||
        atomic_load_explicit(&b->sliced, memory_order_relaxed))
        return LCH_EINVAL;
    if (len > LCH_BUFFER_MAX_LEN)
        return LCH_E2BIG;

    switch ((enum buf_kind)b->kind) {
    case BUF_INLINE:
        if (len <= b->u.own.cap) { /* shrink or regrow within the block */
            b->len = len;
            *data = b->data;
            return LCH_OK;
        }
        break;
    case BUF_OWNED:
        if (len < LCH_BUFFER_CACHE_MIN) {
            int rc = resize_owned(b, len);
            if (rc == LCH_OK)
                *data = b->data;
            return rc;
        }
        break;
    case BUF_LARGE:
        if (len >= LCH_BUFFER_CACHE_MIN) {
            size_t cap;
            uint32_t cls = class_of(len, &cap);
            /* Stay put in the same class; an exact-size block (made while
             * its class was above the cache limit) stays put while less
             * than 1/64 of it would be unused, like a class block. */
            size_t bcap = b->u.own.cap;
            if (b->u.own.cls == NO_CLASS
                    ? len <= bcap && len >= bcap - bcap / CLASS_SUB
                    : cls == b->u.own.cls) {
                b->len = len;
                *data = b->data;
                return LCH_OK;
            }
        }
        break;
    default:
        break;
    }

    /* Move to new storage of the right kind for len. */
    struct store st;
    if (!store_alloc(&st, len))
        return LCH_ENOMEM;
    memcpy(st.data, b->data, b->len < len ? b->len : len);
    if (b->kind != BUF_INLINE)
        store_free(b);
    /* The header (and, from INLINE, its unused data area) stays put. */
    store_attach(b, &st);
    b->len = len;
    *data = b->data;
    return LCH_OK;
}

/* ---- access -------------------------------------------------------------- */

const void *lch_buffer_data(const lch_buffer *b)
{
    return b ? b->data : NULL;
}

size_t lch_buffer_len(const lch_buffer *b)
{
    return b ? b->len : 0;
}

int lch_buffer_ref(lch_buffer *b)
{
    return lch_object_ref(b ? &b->hdr : NULL);
}

void lch_buffer_unref(lch_buffer *b)
{
    if (b)
        lch_object_unref(&b->hdr);
}

lch_object *lch_buffer_object(lch_buffer *b)
{
    return b ? &b->hdr : NULL;
}

lch_buffer *lch_buffer_from_object(lch_object *obj)
{
    if (!obj || obj->type != &lch__buffer_type)
        return NULL;
    return (lch_buffer *)obj;
}
