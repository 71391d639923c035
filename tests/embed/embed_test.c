/* embed_test: a C program that embeds CPython and shares channels with
 * Python through ONE libchan (libchan.so, with the module built with
 * LCH_PYTHON_SHARED_CORE).
 *
 * C creates the named channels "from-c" (bounded) and "to-c"; two isolated
 * subinterpreters, each with its own GIL and in its own thread, find them
 * with libchan.lookup() and forward every item: ints doubled, SharedBuffers
 * unchanged. The main thread sends N_INTS ints and N_BUFS buffers, checks
 * that every result comes back exactly once (a buffer as the very same
 * lch_buffer), then closes "from-c", ends the interpreters and Python, and
 * checks that no libchan object is left alive.
 *
 * Usage: embed_test PKGDIR   (PKGDIR/libchan is the package, with the
 * built extension in it) */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <libchan/libchan.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#define N_INTS 10000
#define N_BUFS 8
#define N_WORKERS 2
#define TIMEOUT_NS ((int64_t)20 * 1000000000)

static const char WORKER_CODE[] =
    "import libchan\n"
    "src = libchan.lookup('from-c')\n"
    "dst = libchan.lookup('to-c')\n"
    "for x in src:\n" /* until "from-c" is closed and drained */
    "    dst.put(x if isinstance(x, libchan.SharedBuffer) else x * 2)\n";

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "embed_test: " __VA_ARGS__);                     \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
        }                                                                    \
    } while (0)

struct worker {
    const char *pkgdir;
    lch_channel *from_c;
    bool ok;
};

/* Put dir first on the current interpreter's sys.path; 0 or -1 (error). */
static int path_insert(const char *dir)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *d = PyUnicode_DecodeFSDefault(dir);
    int r = path && d ? PyList_Insert(path, 0, d) : -1;
    Py_XDECREF(d);
    return r;
}

/* One worker thread: a subinterpreter of its own, with its own GIL, running
 * WORKER_CODE; the thread ends its interpreter itself. On failure it closes
 * "from-c", so that the main thread does not wait for it. */
static void *worker(void *arg)
{
    struct worker *w = arg;
    const PyInterpreterConfig cfg = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 0,
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    PyThreadState *ts = NULL;
    PyStatus st = Py_NewInterpreterFromConfig(&ts, &cfg);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "embed_test: Py_NewInterpreterFromConfig: %s\n",
                st.err_msg ? st.err_msg : "failed");
        lch_channel_close(w->from_c);
        return NULL;
    }
    if (path_insert(w->pkgdir) < 0)
        PyErr_Print();
    else /* prints any traceback */
        w->ok = PyRun_SimpleString(WORKER_CODE) == 0;
    if (!w->ok)
        lch_channel_close(w->from_c);
    Py_EndInterpreter(ts);
    return NULL;
}

static bool make_channel(lch_channel **ch, const char *name, size_t capacity)
{
    lch_channel_opts o = LCH_CHANNEL_OPTS_INIT;
    o.name = name;
    o.capacity = capacity;
    int rc = lch_channel_create_opts(ch, &o);
    CHECK(rc == LCH_OK, "creating %s: %s", name, lch_strerror(rc));
    return rc == LCH_OK;
}

/* Send v, or release it on failure. */
static bool send_one(lch_channel *ch, lch_value v)
{
    int rc = lch_channel_send(ch, v, TIMEOUT_NS);
    CHECK(rc == LCH_OK, "send: %s", lch_strerror(rc));
    if (rc != LCH_OK)
        lch_value_release(&v);
    return rc == LCH_OK;
}

/* Check one result: an int 2*i for an i not seen yet, or one of bufs not
 * seen yet. Takes over v's reference. */
static void check_result(lch_value *v, bool *seen_int, lch_buffer **bufs,
                         bool *seen_buf)
{
    if (v->kind == LCH_INT) {
        int64_t i = v->u.i / 2;
        CHECK(v->u.i % 2 == 0 && i >= 0 && i < N_INTS && !seen_int[i],
              "unexpected or repeated int %lld", (long long)v->u.i);
        if (i >= 0 && i < N_INTS)
            seen_int[i] = true;
    } else if (v->kind == LCH_OBJECT) {
        lch_buffer *b = lch_buffer_from_object(v->u.obj);
        int k = 0;
        while (k < N_BUFS && bufs[k] != b)
            k++;
        CHECK(k < N_BUFS && !seen_buf[k], "unexpected or repeated object %p",
              (void *)v->u.obj);
        if (k < N_BUFS)
            seen_buf[k] = true;
    } else {
        CHECK(0, "unexpected value kind %u", v->kind);
    }
    lch_value_release(v);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKGDIR\n", argv[0]);
        return 2;
    }
    lch_debug_track_objects(true);
    lch_channel *from_c = NULL, *to_c = NULL;
    if (!make_channel(&from_c, "from-c", 4) || !make_channel(&to_c, "to-c", 0))
        return 1;

    /* Python, isolated from the environment; each worker puts PKGDIR on its
     * own sys.path. */
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        fprintf(stderr, "embed_test: initializing Python: %s\n",
                st.err_msg ? st.err_msg : "failed");
        return 1;
    }
    /* The workers create their interpreters without any GIL of ours. */
    PyThreadState *main_ts = PyEval_SaveThread();

    pthread_t threads[N_WORKERS];
    struct worker workers[N_WORKERS];
    int started = 0;
    for (; started < N_WORKERS; started++) {
        workers[started] = (struct worker){argv[1], from_c, false};
        if (pthread_create(&threads[started], NULL, worker,
                           &workers[started])) {
            CHECK(0, "pthread_create failed");
            break;
        }
    }

    static bool seen_int[N_INTS];
    bool seen_buf[N_BUFS] = {0};
    lch_buffer *bufs[N_BUFS] = {0};
    char text[64];
    for (int k = 0; k < N_BUFS; k++) {
        int n = snprintf(text, sizeof text, "buffer number %d", k);
        int rc = lch_buffer_new_copy(&bufs[k], text, (size_t)n);
        CHECK(rc == LCH_OK, "lch_buffer_new_copy: %s", lch_strerror(rc));
    }

    /* Send the ints with a buffer before every N_INTS / N_BUFS-th, picking
     * up results as they come; then wait for the rest. */
    int sent = 0, received = 0;
    lch_value v;
    for (int i = 0; i < N_INTS && !failures; i++) {
        if (i % (N_INTS / N_BUFS) == 0) {
            lch_buffer *b = bufs[i / (N_INTS / N_BUFS)];
            int rc = lch_buffer_ref(b);
            CHECK(rc == LCH_OK, "lch_buffer_ref: %s", lch_strerror(rc));
            if (rc != LCH_OK ||
                !send_one(from_c, lch_value_object(lch_buffer_object(b))))
                break;
            sent++;
        }
        if (!send_one(from_c, lch_value_int(i)))
            break;
        sent++;
        while (lch_channel_recv(to_c, &v, LCH_NOWAIT) == LCH_OK) {
            check_result(&v, seen_int, bufs, seen_buf);
            received++;
        }
    }
    while (received < sent && !failures) {
        int rc = lch_channel_recv(to_c, &v, TIMEOUT_NS);
        CHECK(rc == LCH_OK, "receive #%d: %s", received, lch_strerror(rc));
        if (rc != LCH_OK)
            break;
        check_result(&v, seen_int, bufs, seen_buf);
        received++;
    }
    CHECK(sent == N_INTS + N_BUFS && received == sent,
          "sent %d, received %d of %d", sent, received, N_INTS + N_BUFS);

    /* Shut down: the workers' loops end, each ends its interpreter. */
    lch_channel_close(from_c);
    for (int t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
        CHECK(workers[t].ok, "worker %d failed", t);
    }
    PyEval_RestoreThread(main_ts);
    CHECK(Py_FinalizeEx() == 0, "Py_FinalizeEx failed");

    for (int k = 0; k < N_BUFS; k++)
        lch_buffer_unref(bufs[k]);
    lch_channel_unref(from_c);
    lch_channel_unref(to_c);
    lch_debug_barrier(); /* channels are freed after an RCU grace period */
    lch_debug_counters c;
    lch_debug_counters_get(&c);
    CHECK(c.live_objects == 0, "%lld libchan objects still alive",
          (long long)c.live_objects);

    if (failures)
        return 1;
    printf("embed_test: %d ints + %d buffers through %d subinterpreters "
           "(own GIL) and back, all once; 0 objects left\n",
           N_INTS, N_BUFS, N_WORKERS);
    return 0;
}
