/* error.c: names and messages of the error codes, from LCH_ERRNO_MAP. */
#include "lch_impl.h"

const char *lch_strerror(int err)
{
    switch (err) {
#define LCH__ERR_MSG(name, value, msg)                                         \
    case LCH_##name:                                                           \
        return msg;
        LCH_ERRNO_MAP(LCH__ERR_MSG)
#undef LCH__ERR_MSG
    }
    return "unknown error";
}

const char *lch_err_name(int err)
{
    switch (err) {
#define LCH__ERR_NAME(name, value, msg)                                        \
    case LCH_##name:                                                           \
        return #name;
        LCH_ERRNO_MAP(LCH__ERR_NAME)
#undef LCH__ERR_NAME
    }
    return "UNKNOWN";
}
