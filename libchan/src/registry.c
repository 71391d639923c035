/* registry.c: the process-wide maps id -> channel and name -> channel, on
 * liburcu's lock-free RCU hash table (urcu-bp flavor: threads register
 * themselves on first use, and it supports fork() through the hooks below).
 *
 * Lookups run inside an RCU read-side section and take a reference with
 * get-unless-zero, so a lookup racing with the last unref either gets a live
 * channel or nothing. A dying channel is unlinked by the thread that dropped
 * its last reference, and its memory is freed by call_rcu after every reader
 * that might still see it has left its read-side section.
 *
 * A channel becomes visible to lookups (`published`) only once it is in both
 * maps, so whatever is found by name can also be found by id; a creation
 * that fails (a live channel holds the name) was never visible at all and
 * can be freed at once.
 *
 * fork(): the first channel created installs pthread_atfork handlers that
 * quiesce liburcu (call_rcu worker and urcu-bp's registry) around fork, so
 * the child can go on using libchan, on its own copy of every channel and of
 * the registry. In the child, every channel's wait queues are emptied: the
 * threads parked there exist only in the parent. A program that calls
 * urcu_bp_before_fork() itself must not do so as well. Library unload runs rcu_barrier() so no callback outlives
 * the code it points into. */
#include <pthread.h>
#include <string.h>

#include "lch_impl.h" /* first: urcu-bp.h maps call_rcu & co. to the bp flavor */

#include <urcu/call-rcu.h>

static struct cds_lfht *by_id;
static struct cds_lfht *by_name;
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;
/* Written once inside pthread_once, which orders it before every reader. */
static bool registry_ok;
static _Atomic bool registry_used;

static void before_fork(void)
{
    call_rcu_before_fork();
    urcu_bp_before_fork();
}

static void after_fork_parent(void)
{
    urcu_bp_after_fork_parent();
    call_rcu_after_fork_parent();
}

static void after_fork_child(void)
{
    urcu_bp_after_fork_child();
    call_rcu_after_fork_child();
    /* Only this thread exists now. Dying channels (count zero, not yet
     * unlinked) are reset too: harmless, their memory is still valid. */
    struct cds_lfht_iter it;
    struct cds_lfht_node *node;
    urcu_bp_read_lock();
    cds_lfht_for_each(by_id, &it, node)
        lch__channel_after_fork_child(
            caa_container_of(node, lch_channel, id_node));
    urcu_bp_read_unlock();
}

static void registry_init(void)
{
    int flags = CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING;
    by_id = cds_lfht_new_flavor(64, 64, 0, flags, &urcu_bp_flavor, NULL);
    by_name = cds_lfht_new_flavor(16, 16, 0, flags, &urcu_bp_flavor, NULL);
    if (!by_id || !by_name)
        return; /* registry_ok stays false: creation reports LCH_ENOMEM */
    if (pthread_atfork(before_fork, after_fork_parent, after_fork_child) != 0)
        return;
    registry_ok = true;
    atomic_store_explicit(&registry_used, true, memory_order_relaxed);
}

/* splitmix64 finaliser: ids are sequential, the table wants spread bits. */
static unsigned long hash_id(uint64_t id)
{
    id ^= id >> 30;
    id *= 0xbf58476d1ce4e5b9ull;
    id ^= id >> 27;
    id *= 0x94d049bb133111ebull;
    id ^= id >> 31;
    return (unsigned long)id;
}

/* FNV-1a, 64-bit. */
static unsigned long hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return (unsigned long)h;
}

static int match_id(struct cds_lfht_node *node, const void *key)
{
    const lch_channel *ch = caa_container_of(node, lch_channel, id_node);
    return ch->id == *(const uint64_t *)key;
}

static int match_name(struct cds_lfht_node *node, const void *key)
{
    const lch_channel *ch = caa_container_of(node, lch_channel, name_node);
    return strcmp(ch->name, (const char *)key) == 0;
}

/* Claim ch->name in by_name. A dying holder of the same name (count already
 * zero, not yet unlinked) is replaced; a live one makes this fail. Call
 * inside a read-side section. */
static int add_name(lch_channel *ch)
{
    unsigned long h = hash_name(ch->name);
    for (;;) {
        struct cds_lfht_node *old = cds_lfht_add_unique(
            by_name, h, match_name, ch->name, &ch->name_node);
        if (old == &ch->name_node)
            return LCH_OK;
        lch_channel *holder = caa_container_of(old, lch_channel, name_node);
        LCH__TSAN_ACQUIRE(holder); /* published by its own registry add */
        if (atomic_load_explicit(&holder->hdr.refcount,
                                 memory_order_acquire) != 0)
            return LCH_EEXIST;
        struct cds_lfht_iter it;
        cds_lfht_lookup(by_name, h, match_name, ch->name, &it);
        if (cds_lfht_iter_get_node(&it) != old)
            continue; /* moved on meanwhile: look again */
        if (cds_lfht_replace(by_name, &it, h, match_name, ch->name,
                             &ch->name_node) == 0)
            return LCH_OK;
        /* the dying holder unlinked itself first: retry the add */
    }
}

int lch__registry_add(lch_channel *ch)
{
    pthread_once(&registry_once, registry_init);
    if (!registry_ok)
        return LCH_ENOMEM;
    int rc = LCH_OK;
    LCH__TSAN_RELEASE(ch); /* cds_lfht_add* publishes it (see lch_impl.h) */
    urcu_bp_read_lock();
    if (ch->name)
        rc = add_name(ch);
    if (rc == LCH_OK) {
        cds_lfht_add(by_id, hash_id(ch->id), &ch->id_node);
        /* Release pairs with the acquire load in take_found(). */
        atomic_store_explicit(&ch->published, true, memory_order_release);
    }
    urcu_bp_read_unlock();
    return rc;
}

void lch__registry_remove_and_free(lch_channel *ch,
                                   void (*free_fn)(struct rcu_head *))
{
    urcu_bp_read_lock();
    cds_lfht_del(by_id, &ch->id_node);
    if (ch->name)
        cds_lfht_del(by_name, &ch->name_node); /* -ENOENT if replaced */
    urcu_bp_read_unlock();
    call_rcu(&ch->rcu, free_fn);
}

void lch__registry_barrier(void)
{
    if (atomic_load_explicit(&registry_used, memory_order_relaxed))
        rcu_barrier();
}

/* Take a reference to the channel behind a lookup's node: LCH_OK, LCH_ENOENT
 * if it is not in both maps yet or is already dying, LCH_EOVERFLOW if its
 * count is at the ceiling. Call inside a read-side section. */
static int take_found(lch_channel *ch, lch_channel **out)
{
    LCH__TSAN_ACQUIRE(ch); /* pairs with the release in lch__registry_add */
    if (!atomic_load_explicit(&ch->published, memory_order_acquire))
        return LCH_ENOENT;
    if (lch__object_get_unless_zero(&ch->hdr)) {
        *out = ch;
        return LCH_OK;
    }
    return atomic_load_explicit(&ch->hdr.refcount, memory_order_relaxed)
               ? LCH_EOVERFLOW
               : LCH_ENOENT;
}

int lch_channel_lookup_id(uint64_t id, lch_channel **out)
{
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    pthread_once(&registry_once, registry_init);
    if (!registry_ok)
        return LCH_ENOENT;
    struct cds_lfht_iter it;
    urcu_bp_read_lock();
    cds_lfht_lookup(by_id, hash_id(id), match_id, &id, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    int rc = node ? take_found(caa_container_of(node, lch_channel, id_node),
                               out)
                  : LCH_ENOENT;
    urcu_bp_read_unlock();
    return rc;
}

int lch_channel_lookup_name(const char *name, lch_channel **out)
{
    if (!out)
        return LCH_EINVAL;
    *out = NULL;
    if (!name || !*name)
        return LCH_EINVAL;
    if (strnlen(name, LCH_CHANNEL_MAX_NAME + 1) > LCH_CHANNEL_MAX_NAME)
        return LCH_ENOENT;
    pthread_once(&registry_once, registry_init);
    if (!registry_ok)
        return LCH_ENOENT;
    struct cds_lfht_iter it;
    urcu_bp_read_lock();
    cds_lfht_lookup(by_name, hash_name(name), match_name, name, &it);
    struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
    int rc = node ? take_found(
                        caa_container_of(node, lch_channel, name_node), out)
                  : LCH_ENOENT;
    urcu_bp_read_unlock();
    return rc;
}

/* Library unload (dlclose, or process exit): let pending frees run while the
 * callback code is still mapped. */
__attribute__((destructor)) static void registry_fini(void)
{
    lch__registry_barrier();
}
