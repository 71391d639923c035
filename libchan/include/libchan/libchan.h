/* libchan/libchan.h: the whole public API in one include. */
#ifndef LIBCHAN_LIBCHAN_H
#define LIBCHAN_LIBCHAN_H

#include "libchan/alloc.h"
#include "libchan/buffer.h"
#include "libchan/channel.h"
#include "libchan/debug.h"
#include "libchan/error.h"
#include "libchan/export.h"
#include "libchan/object.h"
#include "libchan/select.h"
#include "libchan/value.h"

#endif /* LIBCHAN_LIBCHAN_H */
