/*
 * libFuzzer target for proxy/target.c. Properties checked on every input, under both policies:
 *   - success sets a path that starts with '/' (or is "*" for asterisk-form), lies inside out
 *     and is no longer than the input; the query and host views lie inside the input;
 *   - the path holds no "//", "/./", "/../", trailing "/." or "/..", no '\\', no control bytes
 *     and no '%' that is not followed by two upper-case hex digits;
 *   - normalising the normalised path again in the same policy succeeds, gives the same path
 *     and reports it unchanged (idempotence);
 *   - STRICT success implies NORMALIZE success with the same path;
 *   - failure sets a reason;
 *   - a valid Host value, put into "http://<host>/" and "https://<host>/", parses and agrees
 *     with itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 8192

static void
check(int cond)
{
    if (!cond)
        abort();
}

static bool
inside(const char *base, size_t len, const char *p, size_t n)
{
    return p >= base && (size_t)(p - base) <= len && n <= len - (size_t)(p - base);
}

static bool
has(const char *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(p + i, needle, k) == 0)
            return true;
    return false;
}

static bool
ends_with(const char *p, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(p + n - k, suffix, k) == 0;
}

static bool
upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void
check_path(const struct target *t)
{
    const char *p = t->path;
    size_t n = t->path_len;
    check(n >= 1 && p[0] == '/');
    check(!has(p, n, "//") && !has(p, n, "/./") && !has(p, n, "/../"));
    check(!ends_with(p, n, "/.") && !ends_with(p, n, "/.."));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        check(c > 0x20 && c < 0x7f && c != '\\' && c != '?' && c != '#');
        if (c == '%')
            check(i + 2 < n && upper_hex(p[i + 1]) && upper_hex(p[i + 2]));
    }
}

/* Runs one policy; returns whether it succeeded, with the path copied to keep[0..*klen). */
static bool
run(const char *in, size_t size, enum target_policy pol, char *keep, size_t *klen)
{
    char out[FUZZ_MAX], again[FUZZ_MAX];
    struct target t, u;
    const char *why = NULL;

    if (target_normalize(in, size, pol, out, size, &t, &why) != 0) {
        check(why != NULL);
        return false;
    }
    check(inside(out, size, t.path, t.path_len));
    check(t.path_len <= (size ? size : 1));
    if (t.query)
        check(inside(in, size, t.query, t.query_len) && t.query[-1] == '?');
    if (t.host) {
        check(t.absolute && inside(in, size, t.host, t.host_len));
        size_t alen = t.port ? (size_t)(t.port + t.port_len - t.host) : t.host_len;
        check(target_host_agrees(&t, t.host, alen));
    }
    if (t.port)
        check(t.host && inside(in, size, t.port, t.port_len) && t.port == t.host + t.host_len + 1);
    if (t.asterisk) {
        check(size == 1 && t.path_len == 1 && t.path[0] == '*' && !t.changed);
        *klen = 1;
        keep[0] = '*';
        return true;
    }
    check_path(&t);
    if (!t.changed)
        check(t.absolute || (t.path_len <= size && memcmp(t.path, in, t.path_len) == 0));

    why = NULL;
    if (target_normalize(t.path, t.path_len, pol, again, t.path_len, &u, &why) != 0)
        abort(); /* the normalised path must be acceptable as it is */
    check(u.path_len == t.path_len && memcmp(u.path, t.path, t.path_len) == 0);
    check(!u.changed && u.query == NULL && !u.absolute);

    memcpy(keep, t.path, t.path_len);
    *klen = t.path_len;
    return true;
}

static void
host_round_trip(const char *in, size_t size)
{
    char raw[FUZZ_MAX + 16], out[FUZZ_MAX + 16];
    struct target t;
    const char *why = NULL;
    bool valid = target_host_valid(in, size);

    if (!valid || size > FUZZ_MAX)
        return;
    for (int https = 0; https <= 1; https++) {
        const char *scheme = https ? "https://" : "http://";
        size_t sl = strlen(scheme);
        memcpy(raw, scheme, sl);
        memcpy(raw + sl, in, size);
        raw[sl + size] = '/';
        check(target_normalize(raw, sl + size + 1, TARGET_STRICT, out, sizeof(out), &t, &why) == 0);
        check(t.absolute && t.https == (https == 1) && t.path_len == 1 && !t.changed);
        check(target_host_agrees(&t, in, size));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char keep_s[FUZZ_MAX], keep_n[FUZZ_MAX];
    size_t ls = 0, ln = 0;
    char *in;
    bool ok_s, ok_n;

    if (size > FUZZ_MAX)
        return 0;
    /* An exact-size heap copy, so ASan reports any read past the end. */
    in = malloc(size ? size : 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    ok_s = run(in, size, TARGET_STRICT, keep_s, &ls);
    ok_n = run(in, size, TARGET_NORMALIZE, keep_n, &ln);
    if (ok_s)
        check(ok_n && ls == ln && memcmp(keep_s, keep_n, ls) == 0);
    host_round_trip(in, size);
    free(in);
    return 0;
}
