// bench_codec.cpp: the value codec (libchan/codec.h) side by side with
// msgpack-c (libmsgpack-dev, C API) in one run. codec_report.py turns the
// JSON into the comparison table.
//
// Benchmarks are named "<case>/<impl>" (access adds "/<elements>"):
//
//   encode_<payload>/{libchan,msgpack}
//       libchan: lch_enc_begin .. lch_enc_finish into a finished, refcounted
//       lch_encoded, then lch_encoded_unref, every iteration. The encoder gets
//       the exact flat size as size_hint (measured once before timing), so
//       each encode is one allocation; msgpack's equivalent is its reused
//       msgpack_sbuffer (msgpack_sbuffer_clear each iteration keeps the
//       capacity), which is how msgpack users keep it from reallocating.
//   decode_<payload>/{libchan,libchan_copy,msgpack}
//       Validate, then walk every element reading its value (ints and floats
//       summed, strings and bytes: pointer and length, the lengths summed),
//       checking each element's type.
//       libchan: lch_encoded_from_buffer over the flat bytes, already in an
//       lch_buffer (validation in full, no copy), then the view accessors
//       (lch_encoded_view, lch_view_child, lch_view_int/float/str/bytes), then
//       lch_encoded_unref. msgpack: msgpack_unpack into a reused msgpack_zone
//       (msgpack_zone_clear each iteration), which references str/bin bytes
//       in the input like libchan does, then walking the msgpack_object.
//       libchan_copy (information only): lch_encoded_from_bytes, which
//       copies the bytes into a new encoded value before validating them.
//   payloads: int_tuple (1000 int64 of mixed magnitudes), float_tuple (1000
//       doubles), str_tuple (1000 ASCII strings of 4..24 bytes), mixed_tuple
//       (250 tuples (int, float, str, bytes), str 4..24 and bytes 8..64
//       bytes), bytes_1mib (a 1-tuple holding 1 MiB of bytes). For decode
//       the 1 MiB is encoded inline (ext_min = SIZE_MAX) so that the flat
//       bytes are self-contained, as they would arrive from outside.
//   encode_bytes_1mib/libchan        lch_enc_bytes from a raw pointer: one
//                                    copy into a new shared buffer
//   encode_bytes_1mib_buffer/libchan lch_enc_bytes_buffer of an lch_buffer
//                                    already holding the 1 MiB: shared, not
//                                    copied. Checked before and after timing
//                                    (the view's bytes pointer must be the
//                                    buffer's data and the side-table entry
//                                    the buffer itself), else SkipWithError;
//                                    counter zero_copy = 1 when it held.
//   access/libchan/N      N = 10, 1000, 100000 ints in a tuple; per iteration
//                         lch_encoded_view + lch_view_child + lch_view_int at
//                         the next index of a precomputed random sequence.
//   access/msgpack/N      msgpack has no random access into packed bytes:
//                         msgpack_unpack (reused zone) and then index the
//                         array, per access. O(N), shown for contrast.
//   validate_mixed_1mib/libchan  lch_codec_validate of ~1 MiB of mixed
//                         records (bytes_per_second = flat bytes validated).
//                         msgpack has no validate-only entry point.
//
// Every payload is round-tripped once before timing (libchan and msgpack
// decoded back and compared with the source values); a mismatch is an error.
//
// Unless the command line says otherwise the binary runs 5 repetitions,
// reports aggregates only (read the medians) and interleaves repetitions in
// random order, as lch_bench and lch_bench_buffer do.
#include <benchmark/benchmark.h>

#include "bench_main.hpp"

#include <msgpack.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "libchan/codec.h"
#include "libchan/libchan.h"

namespace {

// ---- payloads ---------------------------------------------------------------

enum class Kind { Ints, Floats, Strs, Mixed, Bytes };

struct Record {
    int64_t i;
    double f;
    std::string s;
    std::string b; // bytes
    bool operator==(const Record &o) const
    {
        return i == o.i && f == o.f && s == o.s && b == o.b;
    }
};

struct Payload {
    Kind kind;
    std::vector<int64_t> ints;
    std::vector<double> floats;
    std::vector<std::string> strs;
    std::vector<Record> recs;
    std::string bytes;
    bool operator==(const Payload &o) const
    {
        return kind == o.kind && ints == o.ints && floats == o.floats &&
               strs == o.strs && recs == o.recs && bytes == o.bytes;
    }
};

int64_t mixed_int(std::mt19937_64 &rng)
{
    // Magnitudes from 1 to 8 bytes, both signs (msgpack sizes them).
    uint64_t r = rng();
    int bits = int(r % 63) + 1;
    int64_t v = int64_t(rng() >> (64 - bits));
    return (r & 64) ? -v : v;
}

std::string ascii(std::mt19937_64 &rng, size_t lo, size_t hi)
{
    size_t n = lo + rng() % (hi - lo + 1);
    std::string s(n, ' ');
    for (auto &c : s)
        c = char('a' + rng() % 26);
    return s;
}

std::string raw(std::mt19937_64 &rng, size_t lo, size_t hi)
{
    size_t n = lo + rng() % (hi - lo + 1);
    std::string s(n, '\0');
    for (auto &c : s)
        c = char(rng());
    return s;
}

Payload make_payload(Kind k, size_t n)
{
    std::mt19937_64 rng(12345 + int(k));
    Payload p{};
    p.kind = k;
    switch (k) {
    case Kind::Ints:
        for (size_t i = 0; i < n; i++)
            p.ints.push_back(mixed_int(rng));
        break;
    case Kind::Floats: {
        std::uniform_real_distribution<double> d(-1e6, 1e6);
        for (size_t i = 0; i < n; i++)
            p.floats.push_back(d(rng));
        break;
    }
    case Kind::Strs:
        for (size_t i = 0; i < n; i++)
            p.strs.push_back(ascii(rng, 4, 24));
        break;
    case Kind::Mixed: {
        std::uniform_real_distribution<double> d(-1e6, 1e6);
        for (size_t i = 0; i < n; i++)
            p.recs.push_back(
                {mixed_int(rng), d(rng), ascii(rng, 4, 24), raw(rng, 8, 64)});
        break;
    }
    case Kind::Bytes:
        p.bytes = raw(rng, n, n);
        break;
    }
    return p;
}

// ---- libchan ----------------------------------------------------------------

void lch_put(lch_enc *e, const Payload &p)
{
    switch (p.kind) {
    case Kind::Ints:
        lch_enc_tuple(e, p.ints.size());
        for (int64_t v : p.ints)
            lch_enc_int(e, v);
        break;
    case Kind::Floats:
        lch_enc_tuple(e, p.floats.size());
        for (double v : p.floats)
            lch_enc_float(e, v);
        break;
    case Kind::Strs:
        lch_enc_tuple(e, p.strs.size());
        for (const auto &s : p.strs)
            lch_enc_str(e, s.data(), s.size());
        break;
    case Kind::Mixed:
        lch_enc_tuple(e, p.recs.size());
        for (const auto &r : p.recs) {
            lch_enc_tuple(e, 4);
            lch_enc_int(e, r.i);
            lch_enc_float(e, r.f);
            lch_enc_str(e, r.s.data(), r.s.size());
            lch_enc_bytes(e, r.b.data(), r.b.size());
            lch_enc_end(e);
        }
        break;
    case Kind::Bytes:
        lch_enc_tuple(e, 1);
        lch_enc_bytes(e, p.bytes.data(), p.bytes.size());
        break;
    }
    lch_enc_end(e);
}

// Errors are sticky: checking finish's result covers every call.
lch_encoded *lch_encode(const Payload &p, const lch_enc_opts *opts)
{
    lch_enc enc;
    lch_enc_begin(&enc, opts);
    lch_put(&enc, p);
    lch_encoded *out = nullptr;
    return lch_enc_finish(&enc, &out) == LCH_OK ? out : nullptr;
}

// Walk every element (the timed decode). Returns false on a type mismatch.
bool lch_walk(const lch_encoded *e, Kind k, uint64_t *acc)
{
    lch_view root, t;
    if (lch_encoded_view(e, &root) != LCH_OK ||
        lch_view_child(&root, 0, &t) != LCH_OK)
        return false;
    const size_t n = lch_view_count(&t);
    uint64_t sum = 0;
    double fsum = 0;
    const char *s;
    const void *b;
    size_t len;
    switch (k) {
    case Kind::Ints:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            if (lch_view_int(&t, i, &v) != LCH_OK)
                return false;
            sum += uint64_t(v);
        }
        break;
    case Kind::Floats:
        for (size_t i = 0; i < n; i++) {
            double v;
            if (lch_view_float(&t, i, &v) != LCH_OK)
                return false;
            fsum += v;
        }
        break;
    case Kind::Strs:
        for (size_t i = 0; i < n; i++) {
            if (lch_view_str(&t, i, &s, &len, nullptr, nullptr) != LCH_OK)
                return false;
            benchmark::DoNotOptimize(s);
            sum += len;
        }
        break;
    case Kind::Mixed:
        for (size_t i = 0; i < n; i++) {
            lch_view r;
            int64_t iv;
            double fv;
            if (lch_view_child(&t, i, &r) != LCH_OK ||
                lch_view_int(&r, 0, &iv) != LCH_OK ||
                lch_view_float(&r, 1, &fv) != LCH_OK ||
                lch_view_str(&r, 2, &s, &len, nullptr, nullptr) != LCH_OK)
                return false;
            sum += uint64_t(iv) + len;
            fsum += fv;
            benchmark::DoNotOptimize(s);
            if (lch_view_bytes(&r, 3, &b, &len, nullptr) != LCH_OK)
                return false;
            benchmark::DoNotOptimize(b);
            sum += len;
        }
        break;
    case Kind::Bytes:
        if (lch_view_bytes(&t, 0, &b, &len, nullptr) != LCH_OK)
            return false;
        benchmark::DoNotOptimize(b);
        sum += len;
        break;
    }
    benchmark::DoNotOptimize(fsum);
    *acc += sum;
    return true;
}

// Decode back into a Payload (the round-trip check, untimed).
bool lch_to_payload(const lch_encoded *e, Kind k, Payload *out)
{
    *out = Payload{};
    out->kind = k;
    lch_view root, t;
    if (lch_encoded_view(e, &root) != LCH_OK ||
        lch_view_child(&root, 0, &t) != LCH_OK)
        return false;
    const size_t n = lch_view_count(&t);
    const char *s;
    const void *b;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        int64_t iv;
        double fv;
        switch (k) {
        case Kind::Ints:
            if (lch_view_int(&t, i, &iv) != LCH_OK)
                return false;
            out->ints.push_back(iv);
            break;
        case Kind::Floats:
            if (lch_view_float(&t, i, &fv) != LCH_OK)
                return false;
            out->floats.push_back(fv);
            break;
        case Kind::Strs:
            if (lch_view_str(&t, i, &s, &len, nullptr, nullptr) != LCH_OK)
                return false;
            out->strs.emplace_back(s, len);
            break;
        case Kind::Mixed: {
            lch_view r;
            Record rec;
            if (lch_view_child(&t, i, &r) != LCH_OK ||
                lch_view_count(&r) != 4 ||
                lch_view_int(&r, 0, &rec.i) != LCH_OK ||
                lch_view_float(&r, 1, &rec.f) != LCH_OK ||
                lch_view_str(&r, 2, &s, &len, nullptr, nullptr) != LCH_OK)
                return false;
            rec.s.assign(s, len);
            if (lch_view_bytes(&r, 3, &b, &len, nullptr) != LCH_OK)
                return false;
            rec.b.assign(static_cast<const char *>(b), len);
            out->recs.push_back(rec);
            break;
        }
        case Kind::Bytes:
            if (n != 1 || lch_view_bytes(&t, i, &b, &len, nullptr) != LCH_OK)
                return false;
            out->bytes.assign(static_cast<const char *>(b), len);
            break;
        }
    }
    return true;
}

// ---- msgpack ----------------------------------------------------------------

void mp_put(msgpack_packer *pk, const Payload &p)
{
    switch (p.kind) {
    case Kind::Ints:
        msgpack_pack_array(pk, p.ints.size());
        for (int64_t v : p.ints)
            msgpack_pack_int64(pk, v);
        break;
    case Kind::Floats:
        msgpack_pack_array(pk, p.floats.size());
        for (double v : p.floats)
            msgpack_pack_double(pk, v);
        break;
    case Kind::Strs:
        msgpack_pack_array(pk, p.strs.size());
        for (const auto &s : p.strs) {
            msgpack_pack_str(pk, s.size());
            msgpack_pack_str_body(pk, s.data(), s.size());
        }
        break;
    case Kind::Mixed:
        msgpack_pack_array(pk, p.recs.size());
        for (const auto &r : p.recs) {
            msgpack_pack_array(pk, 4);
            msgpack_pack_int64(pk, r.i);
            msgpack_pack_double(pk, r.f);
            msgpack_pack_str(pk, r.s.size());
            msgpack_pack_str_body(pk, r.s.data(), r.s.size());
            msgpack_pack_bin(pk, r.b.size());
            msgpack_pack_bin_body(pk, r.b.data(), r.b.size());
        }
        break;
    case Kind::Bytes:
        msgpack_pack_array(pk, 1);
        msgpack_pack_bin(pk, p.bytes.size());
        msgpack_pack_bin_body(pk, p.bytes.data(), p.bytes.size());
        break;
    }
}

inline bool mp_int(const msgpack_object &o, int64_t *v)
{
    if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *v = int64_t(o.via.u64);
    else if (o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o.via.i64;
    else
        return false;
    return true;
}

inline bool mp_float(const msgpack_object &o, double *v)
{
    if (o.type != MSGPACK_OBJECT_FLOAT64 && o.type != MSGPACK_OBJECT_FLOAT32)
        return false;
    *v = o.via.f64;
    return true;
}

bool mp_walk(const msgpack_object &root, Kind k, uint64_t *acc)
{
    if (root.type != MSGPACK_OBJECT_ARRAY)
        return false;
    const msgpack_object *a = root.via.array.ptr;
    const size_t n = root.via.array.size;
    uint64_t sum = 0;
    double fsum = 0;
    switch (k) {
    case Kind::Ints:
        for (size_t i = 0; i < n; i++) {
            int64_t v;
            if (!mp_int(a[i], &v))
                return false;
            sum += uint64_t(v);
        }
        break;
    case Kind::Floats:
        for (size_t i = 0; i < n; i++) {
            double v;
            if (!mp_float(a[i], &v))
                return false;
            fsum += v;
        }
        break;
    case Kind::Strs:
        for (size_t i = 0; i < n; i++) {
            if (a[i].type != MSGPACK_OBJECT_STR)
                return false;
            benchmark::DoNotOptimize(a[i].via.str.ptr);
            sum += a[i].via.str.size;
        }
        break;
    case Kind::Mixed:
        for (size_t i = 0; i < n; i++) {
            if (a[i].type != MSGPACK_OBJECT_ARRAY || a[i].via.array.size != 4)
                return false;
            const msgpack_object *r = a[i].via.array.ptr;
            int64_t iv;
            double fv;
            if (!mp_int(r[0], &iv) || !mp_float(r[1], &fv) ||
                r[2].type != MSGPACK_OBJECT_STR ||
                r[3].type != MSGPACK_OBJECT_BIN)
                return false;
            benchmark::DoNotOptimize(r[2].via.str.ptr);
            benchmark::DoNotOptimize(r[3].via.bin.ptr);
            sum += uint64_t(iv) + r[2].via.str.size + r[3].via.bin.size;
            fsum += fv;
        }
        break;
    case Kind::Bytes:
        if (n != 1 || a[0].type != MSGPACK_OBJECT_BIN)
            return false;
        benchmark::DoNotOptimize(a[0].via.bin.ptr);
        sum += a[0].via.bin.size;
        break;
    }
    benchmark::DoNotOptimize(fsum);
    *acc += sum;
    return true;
}

bool mp_to_payload(const msgpack_object &root, Kind k, Payload *out)
{
    *out = Payload{};
    out->kind = k;
    if (root.type != MSGPACK_OBJECT_ARRAY)
        return false;
    const msgpack_object *a = root.via.array.ptr;
    for (size_t i = 0; i < root.via.array.size; i++) {
        int64_t iv;
        double fv;
        switch (k) {
        case Kind::Ints:
            if (!mp_int(a[i], &iv))
                return false;
            out->ints.push_back(iv);
            break;
        case Kind::Floats:
            if (!mp_float(a[i], &fv))
                return false;
            out->floats.push_back(fv);
            break;
        case Kind::Strs:
            if (a[i].type != MSGPACK_OBJECT_STR)
                return false;
            out->strs.emplace_back(a[i].via.str.ptr, a[i].via.str.size);
            break;
        case Kind::Mixed: {
            if (a[i].type != MSGPACK_OBJECT_ARRAY || a[i].via.array.size != 4)
                return false;
            const msgpack_object *r = a[i].via.array.ptr;
            Record rec;
            if (!mp_int(r[0], &rec.i) || !mp_float(r[1], &rec.f) ||
                r[2].type != MSGPACK_OBJECT_STR ||
                r[3].type != MSGPACK_OBJECT_BIN)
                return false;
            rec.s.assign(r[2].via.str.ptr, r[2].via.str.size);
            rec.b.assign(r[3].via.bin.ptr, r[3].via.bin.size);
            out->recs.push_back(rec);
            break;
        }
        case Kind::Bytes:
            if (a[i].type != MSGPACK_OBJECT_BIN)
                return false;
            out->bytes.assign(a[i].via.bin.ptr, a[i].via.bin.size);
            break;
        }
    }
    return true;
}

// msgpack state reused across iterations, as msgpack users do.
struct Mp {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_zone zone;
    Mp()
    {
        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_zone_init(&zone, MSGPACK_ZONE_CHUNK_SIZE);
    }
    ~Mp()
    {
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&sbuf);
    }
    Mp(const Mp &) = delete;
    Mp &operator=(const Mp &) = delete;
    bool unpack(const char *data, size_t len, msgpack_object *obj)
    {
        msgpack_zone_clear(&zone);
        size_t off = 0;
        return msgpack_unpack(data, len, &off, &zone, obj) ==
                   MSGPACK_UNPACK_SUCCESS &&
               off == len;
    }
};

// ---- the payload set ----------------------------------------------------------

constexpr size_t kMiB = size_t(1) << 20;

struct Case {
    const char *name;
    Kind kind;
    size_t n;
};

const Case kCases[] = {
    {"int_tuple", Kind::Ints, 1000},     {"float_tuple", Kind::Floats, 1000},
    {"str_tuple", Kind::Strs, 1000},     {"mixed_tuple", Kind::Mixed, 250},
    {"bytes_1mib", Kind::Bytes, kMiB},
};

const Payload &payload(const Case &c)
{
    static std::vector<Payload> cache(std::size(kCases));
    size_t idx = size_t(&c - kCases);
    if (cache[idx].ints.empty() && cache[idx].floats.empty() &&
        cache[idx].strs.empty() && cache[idx].recs.empty() &&
        cache[idx].bytes.empty())
        cache[idx] = make_payload(c.kind, c.n);
    return cache[idx];
}

// Round trip through both codecs once; false (and the reason) on mismatch.
bool round_trip(const Payload &p, std::string *why)
{
    lch_encoded *e = lch_encode(p, nullptr);
    if (!e) {
        *why = "libchan encode failed";
        return false;
    }
    Payload back;
    bool ok = lch_to_payload(e, p.kind, &back) && back == p;
    lch_encoded_unref(e);
    if (!ok) {
        *why = "libchan round trip mismatch";
        return false;
    }
    Mp mp;
    mp_put(&mp.pk, p);
    msgpack_object obj;
    if (!mp.unpack(mp.sbuf.data, mp.sbuf.size, &obj) ||
        !mp_to_payload(obj, p.kind, &back) || !(back == p)) {
        *why = "msgpack round trip mismatch";
        return false;
    }
    return true;
}

// ---- encode -------------------------------------------------------------------

void BM_encode_libchan(benchmark::State &state, const Case *c)
{
    const Payload &p = payload(*c);
    std::string why;
    if (!round_trip(p, &why)) {
        state.SkipWithError(why.c_str());
        return;
    }
    lch_encoded *e = lch_encode(p, nullptr);
    lch_enc_opts opts{};
    opts.size_hint = lch_encoded_len(e); // exact: one allocation per encode
    const size_t out_len = lch_encoded_len(e);
    lch_encoded_unref(e);
    for (auto _ : state) {
        lch_enc enc;
        lch_enc_begin(&enc, &opts);
        lch_put(&enc, p);
        if (lch_enc_finish(&enc, &e) != LCH_OK) {
            state.SkipWithError("lch_enc_finish failed");
            break;
        }
        benchmark::DoNotOptimize(lch_encoded_data(e));
        lch_encoded_unref(e);
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["encoded_bytes"] = double(out_len);
}

void BM_encode_msgpack(benchmark::State &state, const Case *c)
{
    const Payload &p = payload(*c);
    std::string why;
    if (!round_trip(p, &why)) {
        state.SkipWithError(why.c_str());
        return;
    }
    Mp mp;
    mp_put(&mp.pk, p); // warm: the sbuffer reaches its final capacity
    const size_t out_len = mp.sbuf.size;
    for (auto _ : state) {
        msgpack_sbuffer_clear(&mp.sbuf);
        mp_put(&mp.pk, p);
        benchmark::DoNotOptimize(mp.sbuf.data);
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.counters["encoded_bytes"] = double(out_len);
}

// 1 MiB from an lch_buffer the caller already has: shared, not copied.
bool shares(const lch_encoded *e, lch_buffer *buf)
{
    lch_view root, t;
    const void *b = nullptr;
    size_t len = 0;
    lch_buffer *shared = nullptr;
    return lch_encoded_view(e, &root) == LCH_OK &&
           lch_view_child(&root, 0, &t) == LCH_OK &&
           lch_view_bytes(&t, 0, &b, &len, &shared) == LCH_OK &&
           b == lch_buffer_data(buf) && len == lch_buffer_len(buf) &&
           shared == buf && lch_encoded_nrefs(e) == 1 &&
           lch_encoded_ref_at(e, 0) == lch_buffer_object(buf);
}

lch_encoded *encode_buffer_tuple(lch_buffer *buf, const lch_enc_opts *opts)
{
    lch_enc enc;
    lch_enc_begin(&enc, opts);
    lch_enc_tuple(&enc, 1);
    lch_enc_bytes_buffer(&enc, buf);
    lch_enc_end(&enc);
    lch_encoded *e = nullptr;
    return lch_enc_finish(&enc, &e) == LCH_OK ? e : nullptr;
}

void BM_encode_bytes_buffer(benchmark::State &state)
{
    const std::string &src = payload(kCases[4]).bytes;
    lch_buffer *buf = nullptr;
    if (lch_buffer_new_copy(&buf, src.data(), src.size()) != LCH_OK) {
        state.SkipWithError("lch_buffer_new_copy failed");
        return;
    }
    lch_encoded *e = encode_buffer_tuple(buf, nullptr);
    bool ok = e && shares(e, buf);
    lch_enc_opts opts{};
    opts.size_hint = lch_encoded_len(e);
    lch_encoded_unref(e);
    if (!ok) {
        lch_buffer_unref(buf);
        state.SkipWithError("1 MiB buffer was copied, not shared");
        return;
    }
    for (auto _ : state) {
        e = encode_buffer_tuple(buf, &opts);
        if (!e) {
            state.SkipWithError("lch_enc_finish failed");
            break;
        }
        benchmark::DoNotOptimize(lch_encoded_data(e));
        lch_encoded_unref(e);
    }
    e = encode_buffer_tuple(buf, &opts);
    ok = e && shares(e, buf);
    lch_encoded_unref(e);
    lch_buffer_unref(buf);
    if (!ok) {
        state.SkipWithError("1 MiB buffer was copied, not shared");
        return;
    }
    state.counters["zero_copy"] = 1;
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(src.size()));
}

// ---- decode -------------------------------------------------------------------

// Flat, self-contained bytes of a payload (bytes inline whatever their size).
lch_encoded *encode_flat(const Payload &p)
{
    lch_enc_opts opts{};
    opts.ext_min = SIZE_MAX;
    return lch_encode(p, &opts);
}

template <bool Copy>
void BM_decode_libchan(benchmark::State &state, const Case *c)
{
    const Payload &p = payload(*c);
    std::string why;
    if (!round_trip(p, &why)) {
        state.SkipWithError(why.c_str());
        return;
    }
    lch_encoded *src = encode_flat(p);
    lch_buffer *flat = nullptr; // the received bytes, in a shared buffer
    if (!src || lch_encoded_nrefs(src) != 0 ||
        lch_buffer_new_copy(&flat, lch_encoded_data(src),
                            lch_encoded_len(src)) != LCH_OK) {
        lch_encoded_unref(src);
        state.SkipWithError("flat encode failed");
        return;
    }
    const size_t len = lch_encoded_len(src);
    lch_encoded_unref(src);
    const void *data = lch_buffer_data(flat);
    uint64_t acc = 0;
    for (auto _ : state) {
        lch_encoded *e = nullptr;
        int rc = Copy ? lch_encoded_from_bytes(&e, data, len, nullptr)
                      : lch_encoded_from_buffer(&e, flat, nullptr, 0, nullptr);
        if (rc != LCH_OK || !lch_walk(e, p.kind, &acc)) {
            lch_encoded_unref(e);
            state.SkipWithError("libchan decode failed");
            break;
        }
        lch_encoded_unref(e);
    }
    benchmark::DoNotOptimize(acc);
    lch_buffer_unref(flat);
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(len));
}

void BM_decode_msgpack(benchmark::State &state, const Case *c)
{
    const Payload &p = payload(*c);
    std::string why;
    if (!round_trip(p, &why)) {
        state.SkipWithError(why.c_str());
        return;
    }
    Mp packed;
    mp_put(&packed.pk, p);
    Mp mp;
    uint64_t acc = 0;
    for (auto _ : state) {
        msgpack_object obj;
        if (!mp.unpack(packed.sbuf.data, packed.sbuf.size, &obj) ||
            !mp_walk(obj, p.kind, &acc)) {
            state.SkipWithError("msgpack decode failed");
            break;
        }
    }
    benchmark::DoNotOptimize(acc);
    state.SetItemsProcessed(int64_t(state.iterations()));
    state.SetBytesProcessed(int64_t(state.iterations()) *
                            int64_t(packed.sbuf.size));
}

// ---- access -------------------------------------------------------------------

constexpr size_t kIdx = 4096; // random indices, cycled

std::vector<uint32_t> random_indices(size_t n)
{
    std::mt19937_64 rng(777 + n);
    std::vector<uint32_t> idx(kIdx);
    for (auto &i : idx)
        i = uint32_t(rng() % n);
    return idx;
}

void BM_access_libchan(benchmark::State &state)
{
    const size_t n = size_t(state.range(0));
    Payload p = make_payload(Kind::Ints, n);
    lch_encoded *e = lch_encode(p, nullptr);
    if (!e) {
        state.SkipWithError("encode failed");
        return;
    }
    const auto idx = random_indices(n);
    for (uint32_t i : idx) { // check once
        lch_view root, t;
        int64_t v = 0;
        if (lch_encoded_view(e, &root) != LCH_OK ||
            lch_view_child(&root, 0, &t) != LCH_OK ||
            lch_view_int(&t, i, &v) != LCH_OK || v != p.ints[i]) {
            lch_encoded_unref(e);
            state.SkipWithError("access mismatch");
            return;
        }
    }
    size_t k = 0;
    uint64_t acc = 0;
    for (auto _ : state) {
        lch_view root, t;
        int64_t v = 0;
        lch_encoded_view(e, &root);
        lch_view_child(&root, 0, &t);
        lch_view_int(&t, idx[k++ & (kIdx - 1)], &v);
        acc += uint64_t(v);
    }
    benchmark::DoNotOptimize(acc);
    lch_encoded_unref(e);
    state.SetItemsProcessed(int64_t(state.iterations()));
}

void BM_access_msgpack(benchmark::State &state)
{
    const size_t n = size_t(state.range(0));
    Payload p = make_payload(Kind::Ints, n);
    Mp packed;
    mp_put(&packed.pk, p);
    Mp mp;
    const auto idx = random_indices(n);
    size_t k = 0;
    uint64_t acc = 0;
    for (auto _ : state) {
        msgpack_object obj;
        int64_t v = 0;
        uint32_t i = idx[k++ & (kIdx - 1)];
        if (!mp.unpack(packed.sbuf.data, packed.sbuf.size, &obj) ||
            obj.type != MSGPACK_OBJECT_ARRAY ||
            !mp_int(obj.via.array.ptr[i], &v) || v != p.ints[i]) {
            state.SkipWithError("msgpack access failed");
            break;
        }
        acc += uint64_t(v);
    }
    benchmark::DoNotOptimize(acc);
    state.SetItemsProcessed(int64_t(state.iterations()));
}

// ---- validation ---------------------------------------------------------------

void BM_validate_mixed(benchmark::State &state)
{
    // Scale the mixed records until the flat bytes reach 1 MiB.
    lch_encoded *probe = encode_flat(make_payload(Kind::Mixed, 250));
    size_t per = probe ? lch_encoded_len(probe) / 250 : 1;
    lch_encoded_unref(probe);
    Payload p = make_payload(Kind::Mixed, kMiB / per + 1);
    lch_encoded *e = encode_flat(p);
    if (!e || lch_encoded_nrefs(e) != 0) {
        lch_encoded_unref(e);
        state.SkipWithError("encode failed");
        return;
    }
    const void *data = lch_encoded_data(e);
    const size_t len = lch_encoded_len(e);
    for (auto _ : state) {
        int rc = lch_codec_validate(data, len, nullptr, 0, nullptr);
        if (rc != LCH_OK) {
            state.SkipWithError("validation failed");
            break;
        }
        benchmark::DoNotOptimize(rc);
    }
    lch_encoded_unref(e);
    state.counters["flat_bytes"] = double(len);
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(len));
}

// ---- registration -------------------------------------------------------------

void register_all()
{
    for (const Case &c : kCases) {
        std::string n = c.name;
        benchmark::RegisterBenchmark(("encode_" + n + "/libchan").c_str(),
                                     BM_encode_libchan, &c);
        benchmark::RegisterBenchmark(("encode_" + n + "/msgpack").c_str(),
                                     BM_encode_msgpack, &c);
        if (c.kind == Kind::Bytes)
            benchmark::RegisterBenchmark(
                "encode_bytes_1mib_buffer/libchan", BM_encode_bytes_buffer);
    }
    for (const Case &c : kCases) {
        std::string n = c.name;
        benchmark::RegisterBenchmark(("decode_" + n + "/libchan").c_str(),
                                     BM_decode_libchan<false>, &c);
        benchmark::RegisterBenchmark(("decode_" + n + "/libchan_copy").c_str(),
                                     BM_decode_libchan<true>, &c);
        benchmark::RegisterBenchmark(("decode_" + n + "/msgpack").c_str(),
                                     BM_decode_msgpack, &c);
    }
    for (int64_t n : {10, 1000, 100000}) {
        benchmark::RegisterBenchmark("access/libchan", BM_access_libchan)
            ->Arg(n);
    }
    for (int64_t n : {10, 1000, 100000}) {
        benchmark::RegisterBenchmark("access/msgpack", BM_access_msgpack)
            ->Arg(n);
    }
    benchmark::RegisterBenchmark("validate_mixed_1mib/libchan",
                                 BM_validate_mixed);
}

} // namespace

int main(int argc, char **argv)
{
    if (!lchb_main::initialize(argc, argv))
        return 1;
    register_all();
    benchmark::AddCustomContext("lch_bench_codec.msgpack",
                                msgpack_version());
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
