/* consumer.c: the smallest useful program against an installed libchan:
 * two threads talk through a bounded channel; exits 0 only if every value
 * arrived in order. Built three ways by scripts/dev (CMake shared, CMake
 * static, pkg-config). */
#include <libchan/libchan.h>
#include <pthread.h>
#include <stdio.h>

enum { COUNT = 10000 };

static void *producer(void *arg)
{
    lch_channel *ch = arg;
    for (int64_t i = 0; i < COUNT; i++)
        if (lch_channel_send(ch, lch_value_int(i), LCH_FOREVER) != LCH_OK)
            return (void *)1;
    lch_channel_close(ch);
    return NULL;
}

int main(void)
{
    lch_channel *ch;
    int rc = lch_channel_create(&ch, 16);
    if (rc != LCH_OK) {
        fprintf(stderr, "create: %s\n", lch_strerror(rc));
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, producer, ch);
    lch_value v;
    int64_t expect = 0;
    while ((rc = lch_channel_recv(ch, &v, LCH_FOREVER)) == LCH_OK) {
        if (v.kind != LCH_INT || v.u.i != expect++)
            return 1;
    }
    void *res;
    pthread_join(t, &res);
    lch_channel_unref(ch);
    if (rc != LCH_ECLOSED || expect != COUNT || res != NULL) {
        fprintf(stderr, "got %lld values, ended with %s\n", (long long)expect,
                lch_err_name(rc));
        return 1;
    }
    printf("consumer: %d values in order, then %s\n", COUNT, lch_err_name(rc));
    return 0;
}
