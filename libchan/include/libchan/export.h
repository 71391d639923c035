/* libchan/export.h: the one macro that marks a symbol as part of the ABI.
 *
 * The library is built with -fvisibility=hidden, so only declarations tagged
 * LCH_API are exported from libchan.so. On ELF the attribute is harmless in a
 * consumer's translation units, so the header needs no "building vs using"
 * switch; the static library ignores it. */
#ifndef LIBCHAN_EXPORT_H
#define LIBCHAN_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#  define LCH_API __attribute__((visibility("default")))
#else
#  define LCH_API
#endif

#define LCH_VERSION_MAJOR 0
#define LCH_VERSION_MINOR 1
#define LCH_VERSION_PATCH 0

#endif /* LIBCHAN_EXPORT_H */
