/* object.c: the refcount shared by every object that crosses threads, and
 * application-defined objects (lch_object_new). */
#include <string.h>

#include "lch_impl.h"

_Atomic bool lch__track_objects = false;
_Atomic int64_t lch__live_objects = 0;

/* Application objects: header, then the payload at a max_align_t boundary. */
#define LCH__USER_PAYLOAD_OFFSET                                               \
    ((sizeof(lch_object) + alignof(max_align_t) - 1) &                         \
     ~(alignof(max_align_t) - 1))

void lch__object_init(lch_object *obj, const lch_type *type, uint32_t flags)
{
    /* Relaxed: the object is not shared yet; publishing it (through a
     * channel or the registry) provides the ordering. */
    if (atomic_load_explicit(&lch__track_objects, memory_order_relaxed)) {
        flags |= LCH__OBJ_COUNTED;
        atomic_fetch_add_explicit(&lch__live_objects, 1,
                                  memory_order_relaxed);
    }
    atomic_init(&obj->refcount, 1);
    obj->flags = flags;
    obj->type = type;
}

void lch__object_forget(lch_object *obj)
{
    if (obj->flags & LCH__OBJ_COUNTED)
        atomic_fetch_sub_explicit(&lch__live_objects, 1,
                                  memory_order_relaxed);
}

lch_object *lch_object_new(const lch_type *type, size_t payload_size)
{
    if (!type || type->tag < LCH_TYPE_USER)
        return NULL;
    if (payload_size > SIZE_MAX - LCH__USER_PAYLOAD_OFFSET)
        return NULL;
    lch_object *obj = lch__malloc(LCH__USER_PAYLOAD_OFFSET + payload_size);
    if (!obj)
        return NULL;
    memset((char *)obj + LCH__USER_PAYLOAD_OFFSET, 0, payload_size);
    lch__object_init(obj, type, LCH__OBJ_USER);
    return obj;
}

void *lch_object_payload(lch_object *obj)
{
    if (!obj || !(obj->flags & LCH__OBJ_USER))
        return NULL;
    return (char *)obj + LCH__USER_PAYLOAD_OFFSET;
}

int lch_object_ref(lch_object *obj)
{
    if (!obj)
        return LCH_EINVAL;
    /* Relaxed: the caller already holds a reference, so the object is alive
     * and nothing is published by taking another one. */
    uint32_t old = atomic_fetch_add_explicit(&obj->refcount, 1,
                                             memory_order_relaxed);
    if (LCH__UNLIKELY(old >= LCH__REF_MAX)) {
        atomic_fetch_sub_explicit(&obj->refcount, 1, memory_order_relaxed);
        return LCH_EOVERFLOW;
    }
    if (LCH__UNLIKELY(old == 0))
        lch__panic("lch_object_ref on an object with no references");
    return LCH_OK;
}

bool lch__object_get_unless_zero(lch_object *obj)
{
    uint32_t c = atomic_load_explicit(&obj->refcount, memory_order_relaxed);
    do {
        if (c == 0 || c >= LCH__REF_MAX)
            return false;
        /* Acquire on success pairs with the release publication of the
         * object (cds_lfht_add) so its fields are visible to the caller. */
    } while (!atomic_compare_exchange_weak_explicit(
        &obj->refcount, &c, c + 1, memory_order_acquire,
        memory_order_relaxed));
    return true;
}

void lch_object_unref(lch_object *obj)
{
    if (!obj)
        return;
    /* acq_rel: the release half orders this thread's use of the object
     * before the decrement; the acquire half, taken by whichever thread
     * drops the last reference, pairs with every other thread's release so
     * their uses happen-before destroy. (An acquire fence only on the last
     * decrement would do, but ThreadSanitizer does not model fences.) */
    uint32_t old = atomic_fetch_sub_explicit(&obj->refcount, 1,
                                             memory_order_acq_rel);
    if (LCH__LIKELY(old != 1)) {
        if (LCH__UNLIKELY(old == 0))
            lch__panic("lch_object_unref: reference count underflow");
        return;
    }
    uint32_t flags = obj->flags;
    if (flags & LCH__OBJ_COUNTED)
        atomic_fetch_sub_explicit(&lch__live_objects, 1,
                                  memory_order_relaxed);
    if (obj->type->destroy)
        obj->type->destroy(obj);
    if (!(flags & LCH__OBJ_SELF_FREE))
        lch__free(obj);
}

uint32_t lch_object_type(const lch_object *obj)
{
    return obj ? obj->type->tag : 0;
}

uint32_t lch_object_refcount(const lch_object *obj)
{
    return obj ? atomic_load_explicit(&obj->refcount, memory_order_relaxed)
               : 0;
}

void lch_value_release(lch_value *v)
{
    if (!v)
        return;
    if (v->kind == LCH_OBJECT)
        lch_object_unref(v->u.obj);
    *v = lch_value_none();
}

int lch_value_copy(lch_value *dst, const lch_value *src)
{
    if (!dst || !src) {
        if (dst)
            *dst = lch_value_none();
        return LCH_EINVAL;
    }
    if (src->kind == LCH_OBJECT) {
        int rc = lch_object_ref(src->u.obj);
        if (rc != LCH_OK) {
            *dst = lch_value_none();
            return rc;
        }
    }
    *dst = *src;
    return LCH_OK;
}

void lch_debug_track_objects(bool on)
{
    atomic_store_explicit(&lch__track_objects, on, memory_order_relaxed);
}
