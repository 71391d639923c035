/* libchan/value.h: the 16-byte tagged value a channel carries by copy.
 *
 * A value is None, a bool, an int64, a double, or a counted reference to a
 * refcounted object. Scalars live inside the value, so sending one allocates
 * nothing. A value of kind LCH_OBJECT owns exactly one reference: whoever holds
 * the value (the caller, or a channel while it is queued) releases it once,
 * with lch_value_release(), or hands it on.
 *
 * `tag` is the application's: libchan carries it unchanged and never reads it
 * (a binding can mark how to rebuild the value, an embedder a message type). */
#ifndef LIBCHAN_VALUE_H
#define LIBCHAN_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "libchan/export.h"
#include "libchan/object.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lch_kind {
    LCH_NONE = 0,
    LCH_BOOL = 1,
    LCH_INT = 2,
    LCH_FLOAT = 3,
    LCH_OBJECT = 4
} lch_kind;

typedef struct lch_value {
    uint32_t kind; /* lch_kind */
    uint32_t tag;  /* application data, carried verbatim */
    union {
        bool b;
        int64_t i;
        double f;
        lch_object *obj; /* one counted reference when kind == LCH_OBJECT */
    } u;
} lch_value;

#ifdef __cplusplus
static_assert(sizeof(lch_value) == 16, "lch_value must stay 16 bytes");
#else
_Static_assert(sizeof(lch_value) == 16, "lch_value must stay 16 bytes");
#endif

static inline lch_value lch_value_none(void)
{
    lch_value v;
    v.kind = LCH_NONE;
    v.tag = 0;
    v.u.i = 0;
    return v;
}

static inline lch_value lch_value_bool(bool b)
{
    lch_value v = lch_value_none();
    v.kind = LCH_BOOL;
    v.u.b = b;
    return v;
}

static inline lch_value lch_value_int(int64_t i)
{
    lch_value v = lch_value_none();
    v.kind = LCH_INT;
    v.u.i = i;
    return v;
}

static inline lch_value lch_value_float(double f)
{
    lch_value v = lch_value_none();
    v.kind = LCH_FLOAT;
    v.u.f = f;
    return v;
}

/* Wrap `obj`, taking over the caller's reference (no count change). */
static inline lch_value lch_value_object(lch_object *obj)
{
    lch_value v = lch_value_none();
    v.kind = LCH_OBJECT;
    v.u.obj = obj;
    return v;
}

/* Release what *v owns (one object reference, if any) and reset it to None.
 * NULL is ignored. Any thread. */
LCH_API void lch_value_release(lch_value *v);

/* Make *dst a copy of *src with its own reference (a counted copy for
 * objects). On failure (LCH_EINVAL for NULL, LCH_EOVERFLOW) *dst is None and
 * *src is unchanged. Any thread. */
LCH_API int lch_value_copy(lch_value *dst, const lch_value *src);

#ifdef __cplusplus
}
#endif

#endif /* LIBCHAN_VALUE_H */
