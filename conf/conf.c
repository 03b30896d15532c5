/*
 * Configuration loader: libconfig file -> struct conf (see conf.h).
 *
 * The file is read with libconfig, then walked by hand: every group is checked against the
 * list of keys it may hold (anything else is an error), every value is type- and
 * range-checked, and the cross-field rules run last. The first problem ends the load.
 *
 * Error lines have the form
 *
 *     FILE:LINE: KEY: message
 *
 * KEY is the setting's path in libconfig's own lookup notation: group members joined by
 * '.', list and array elements as ".[N]" with N counted from 0, e.g. "routes.[1].offer",
 * "listeners.[0].tls.certs.[1].key", "backends.[0].servers.[2]". For a required key that is
 * missing, KEY names the missing key and LINE is that of the group that lacks it. Problems
 * that belong to no key use a parenthesised pseudo-key, which cannot clash with a real
 * setting name: "(file)" when the file cannot be opened, "(syntax)" for libconfig parse
 * errors. LINE is 0 when there is no line to point at (file errors, a missing top-level key).
 *
 * Relative file names (certificate chains, keys, CA bundles, log_file) are taken relative
 * to the directory of the main config file, made absolute with the working directory at
 * load time so that a later chdir() cannot change their meaning. @include files are looked
 * up in that same directory.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

/* Defaults and ranges (conf.h documents the defaults for users of struct conf). */
#define DEF_MAX_HEADER_BYTES 65536
#define MIN_MAX_HEADER_BYTES 1024
#define MAX_MAX_HEADER_BYTES 1048576
#define DEF_MAX_HEADERS 200
#define MIN_MAX_HEADERS 1
#define MAX_MAX_HEADERS 10000
#define DEF_HIGH_WATER 65536
#define MIN_HIGH_WATER 4096
#define MAX_HIGH_WATER 16777216
#define MAX_WORKERS 256
#define DEF_GRACE_MS 30000u
#define DEF_HANDSHAKE_TIMEOUT_MS 10000u
#define MAX_MAX_CONNECTIONS 1000000
#define DEF_MAX_ACCEPT 64
#define MAX_MAX_ACCEPT 100000
#define DEF_MAX_HANDSHAKES 2
#define MAX_MAX_HANDSHAKES 10000
#define DEF_DRAIN_TIMEOUT_MS 3600000u
#define DEF_MAX_GENERATIONS 4
#define MAX_MAX_GENERATIONS 64
#define DEF_CONNECT_TIMEOUT_MS 5000u
/* health = { ... } defaults (README, Operations: health) */
#define DEF_HEALTH_PATH "/owa/healthcheck.htm"
#define DEF_HEALTH_INTERVAL_MS 5000u
#define DEF_HEALTH_TIMEOUT_MS 2000u
#define DEF_HEALTH_RISE 2u
#define DEF_HEALTH_FALL 3u
#define DEF_HEALTH_EXPECT 200
#define DEF_HEADER_TIMEOUT_MS 30000u
#define DEF_IDLE_TIMEOUT_MS 120000u
#define DEF_BODY_TIMEOUT_MS 300000u
/* Outlook keeps RPC over HTTP channels and MAPI notification waits open for a long time
 * (failure F8 in DESIGN.md): these vdirs get an hour of silence by default. */
#define DEF_LONG_TIMEOUT_MS 3600000u
#define MAX_ROUTE_PATH 1024
#define KEY_PATH_MAX 256
#define MAX_FILE_BYTES (4 * 1024 * 1024)

struct loader {
    const char *path; /* the config file as the caller named it */
    char *dir;        /* absolute directory of path: base for relative file names */
    char *err;
    size_t errlen;
};

/* ---- error reporting ---------------------------------------------------------------- */

static void
buf_add(char *buf, size_t size, size_t *pos, const char *text)
{
    size_t n = strlen(text);

    if (*pos + 1 >= size)
        return;
    if (n > size - 1 - *pos)
        n = size - 1 - *pos;
    memcpy(buf + *pos, text, n);
    *pos += n;
    buf[*pos] = '\0';
}

/* Appends the dotted key path of S (the root contributes nothing). */
static void
key_path(const config_setting_t *s, char *buf, size_t size, size_t *pos)
{
    const config_setting_t *parent;
    char idx[32];

    if (s == NULL || config_setting_parent(s) == NULL)
        return;
    parent = config_setting_parent(s);
    key_path(parent, buf, size, pos);
    if (*pos > 0)
        buf_add(buf, size, pos, ".");
    if (config_setting_name(s) != NULL) {
        buf_add(buf, size, pos, config_setting_name(s));
    } else {
        snprintf(idx, sizeof(idx), "[%d]", config_setting_index(s));
        buf_add(buf, size, pos, idx);
    }
}

/* Values quoted in messages may hold escaped newlines or other controls: keep one line. */
static void
one_line(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s == 0x7f)
            *s = '?';
}

/*
 * libconfig names an @include file as written in the directive, relative to the include
 * directory; spell it out so that the message points at the right file.
 */
static const char *
source_name(const struct loader *ld, const char *file, char *buf, size_t size)
{
    if (file[0] == '/' || strcmp(file, ld->path) == 0 || ld->dir == NULL)
        return file;
    snprintf(buf, size, "%s/%s", ld->dir, file);
    return buf;
}

/*
 * Writes "FILE:LINE: KEY: message" for setting S (or for member CHILD of S when CHILD is
 * not NULL, with the line of S) and returns -1 so callers can `return report(...)`.
 */
static int report(struct loader *ld, const config_setting_t *s, const char *child, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int
report(struct loader *ld, const config_setting_t *s, const char *child, const char *fmt, ...)
{
    char key[KEY_PATH_MAX] = "";
    char msg[512], fbuf[PATH_MAX];
    const char *file = ld->path;
    unsigned line = 0;
    size_t pos = 0;
    va_list ap;

    if (ld->err == NULL || ld->errlen == 0)
        return -1;
    if (s != NULL) {
        if (config_setting_source_file(s) != NULL)
            file = source_name(ld, config_setting_source_file(s), fbuf, sizeof(fbuf));
        line = config_setting_source_line(s);
        key_path(s, key, sizeof(key), &pos);
    }
    if (child != NULL) {
        if (pos > 0)
            buf_add(key, sizeof(key), &pos, ".");
        buf_add(key, sizeof(key), &pos, child);
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", file, line, key, msg);
    one_line(ld->err);
    return -1;
}

static int
report_oom(struct loader *ld, const config_setting_t *s)
{
    return report(ld, s, NULL, "out of memory");
}

/* ---- small helpers ---------------------------------------------------------------- */

/* Case-insensitive edit distance, for "did you mean" hints; large for long words. */
static size_t
edit_distance(const char *a, const char *b)
{
    enum { MAXW = 40 };
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[MAXW + 1], cur[MAXW + 1];

    if (la > MAXW || lb > MAXW)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
    }
    return prev[lb];
}

/* The closest of the NULL-terminated WORDS to WORD when it is a plausible typo, else NULL. */
static const char *
closest(const char *word, const char *const *words)
{
    const char *best = NULL;
    size_t best_d = 3; /* suggest only within two edits */

    for (size_t i = 0; words[i] != NULL; i++) {
        size_t d = edit_distance(word, words[i]);
        if (d < best_d && d < strlen(words[i])) {
            best_d = d;
            best = words[i];
        }
    }
    return best;
}

static bool
in_list(const char *word, const char *const *words)
{
    for (size_t i = 0; words != NULL && words[i] != NULL; i++)
        if (strcmp(word, words[i]) == 0)
            return true;
    return false;
}

static bool
has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- key and type checks ---------------------------------------------------------- */

/*
 * Every member of GROUP must be in KNOWN. Members listed in MISPLACED are known one level
 * further down, inside WHERE; say so instead of only "unknown".
 */
static int
check_keys(struct loader *ld, const config_setting_t *group, const char *const *known,
           const char *const *misplaced, const char *where)
{
    int n = config_setting_length(group);

    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        const char *hint;

        if (name == NULL || in_list(name, known))
            continue;
        if (in_list(name, misplaced))
            return report(ld, m, NULL, "unknown key '%s' here (it belongs inside %s)", name, where);
        hint = closest(name, known);
        if (hint != NULL)
            return report(ld, m, NULL, "unknown key '%s' (did you mean '%s'?)", name, hint);
        return report(ld, m, NULL, "unknown key '%s'", name);
    }
    return 0;
}

static const char *
type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
        return "a group { ... }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a floating-point number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ... ]";
    case CONFIG_TYPE_LIST:
        return "a list ( ... )";
    default:
        return "an unknown type";
    }
}

static int
expect(struct loader *ld, const config_setting_t *s, int type, const char *what)
{
    if (config_setting_type(s) == type)
        return 0;
    return report(ld, s, NULL, "expected %s, found %s", what, type_name(s));
}

/* A list ( ... ) or an array [ ... ]. */
static int
expect_sequence(struct loader *ld, const config_setting_t *s, const char *what)
{
    if (config_setting_is_list(s) || config_setting_is_array(s))
        return 0;
    return report(ld, s, NULL, "expected %s, found %s", what, type_name(s));
}

/* A non-empty string setting; *out is a view into the libconfig tree. */
static int
setting_string(struct loader *ld, const config_setting_t *s, const char **out)
{
    const char *v;

    if (expect(ld, s, CONFIG_TYPE_STRING, "a string") < 0)
        return -1;
    v = config_setting_get_string(s);
    if (v == NULL || v[0] == '\0')
        return report(ld, s, NULL, "must not be empty");
    *out = v;
    return 0;
}

static int
setting_strdup(struct loader *ld, const config_setting_t *s, char **out)
{
    const char *v = NULL;
    char *copy;

    if (setting_string(ld, s, &v) < 0)
        return -1;
    copy = strdup(v);
    if (copy == NULL)
        return report_oom(ld, s);
    free(*out);
    *out = copy;
    return 0;
}

/* The optional members below leave *out untouched when NAME is absent. */

static int
opt_bool(struct loader *ld, const config_setting_t *group, const char *name, bool *out)
{
    const config_setting_t *s = config_setting_get_member(group, name);

    if (s == NULL)
        return 0;
    if (expect(ld, s, CONFIG_TYPE_BOOL, "true or false") < 0)
        return -1;
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

static int
opt_size(struct loader *ld, const config_setting_t *group, const char *name, long long min,
         long long max, size_t *out)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    long long v;

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return report(ld, s, NULL, "expected an integer, found %s", type_name(s));
    v = config_setting_get_int64(s);
    if (v < min || v > max)
        return report(ld, s, NULL, "%lld is out of range (%lld..%lld)", v, min, max);
    *out = (size_t)v;
    return 0;
}

static int
opt_strdup(struct loader *ld, const config_setting_t *group, const char *name, char **out)
{
    const config_setting_t *s = config_setting_get_member(group, name);

    if (s == NULL)
        return 0;
    return setting_strdup(ld, s, out);
}

static const config_setting_t *
require(struct loader *ld, const config_setting_t *group, const char *name)
{
    const config_setting_t *s = config_setting_get_member(group, name);

    if (s == NULL)
        report(ld, group, name, "required key is missing");
    return s;
}

/* Durations: an integer number of seconds, or a string accepted by conf_parse_duration. */
static int
opt_duration(struct loader *ld, const config_setting_t *group, const char *name, bool allow_zero,
             unsigned *ms_out)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    unsigned ms = 0;

    if (s == NULL)
        return 0;
    if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64) {
        long long sec = config_setting_get_int64(s);
        if (sec < 0 || sec > (long long)(UINT_MAX / 1000))
            return report(ld, s, NULL, "%lld seconds is out of range (0..%u)", sec,
                          UINT_MAX / 1000);
        ms = (unsigned)sec * 1000u;
    } else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
        const char *text = config_setting_get_string(s);
        if (conf_parse_duration(text, &ms) < 0)
            return report(ld, s, NULL,
                          "invalid duration '%s' (expected seconds, or a number followed by "
                          "ms, s, m or h, e.g. \"30s\")",
                          text);
    } else {
        return report(ld, s, NULL,
                      "expected a duration (seconds, or a string like \"30s\"), "
                      "found %s",
                      type_name(s));
    }
    if (ms == 0 && !allow_zero)
        return report(ld, s, NULL, "must be greater than zero");
    *ms_out = ms;
    return 0;
}

static const struct {
    const char *name;
    int version;
} tls_versions[] = {
    {"TLSv1", CONF_TLS10},   {"TLSv1.0", CONF_TLS10}, {"TLSv1.1", CONF_TLS11},
    {"TLSv1.2", CONF_TLS12}, {"TLSv1.3", CONF_TLS13},
};

static const char *
tls_version_name(int v)
{
    for (size_t i = 1; i < sizeof(tls_versions) / sizeof(tls_versions[0]); i++)
        if (tls_versions[i].version == v)
            return tls_versions[i].name;
    return "?";
}

static int
opt_tls_version(struct loader *ld, const config_setting_t *group, const char *name, int *out)
{
    const config_setting_t *s = config_setting_get_member(group, name);
    const char *v = NULL;

    if (s == NULL)
        return 0;
    if (setting_string(ld, s, &v) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(tls_versions) / sizeof(tls_versions[0]); i++) {
        if (strcasecmp(v, tls_versions[i].name) == 0) {
            *out = tls_versions[i].version;
            return 0;
        }
    }
    return report(ld, s, NULL,
                  "unknown TLS version '%s' (expected TLSv1.0, TLSv1.1, TLSv1.2 or TLSv1.3)", v);
}

/* min_protocol and max_protocol of GROUP, defaults TLS 1.2 .. TLS 1.3. */
static int
tls_range(struct loader *ld, const config_setting_t *group, int *min_out, int *max_out)
{
    int min = CONF_TLS12, max = CONF_TLS13;
    const config_setting_t *at;

    if (opt_tls_version(ld, group, "min_protocol", &min) < 0 ||
        opt_tls_version(ld, group, "max_protocol", &max) < 0)
        return -1;
    if (min > max) {
        at = config_setting_get_member(group, "min_protocol");
        if (at == NULL)
            at = config_setting_get_member(group, "max_protocol");
        return report(ld, at, NULL, "min_protocol %s is above max_protocol %s",
                      tls_version_name(min), tls_version_name(max));
    }
    *min_out = min;
    *max_out = max;
    return 0;
}

/* ---- files -------------------------------------------------------------------------- */

static char *
path_join(const char *dir, const char *name)
{
    size_t ld = strlen(dir), ln = strlen(name);
    bool slash = ld > 0 && dir[ld - 1] != '/';
    char *p = malloc(ld + slash + ln + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, dir, ld);
    if (slash)
        p[ld] = '/';
    memcpy(p + ld + slash, name, ln + 1);
    return p;
}

/* Absolute directory of PATH (relative to the working directory when PATH is relative). */
static char *
config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *rel = NULL, *cwd = NULL, *out = NULL;

    if (slash == path)
        return strdup("/");
    rel = slash == NULL ? strdup(".") : strndup(path, (size_t)(slash - path));
    if (rel == NULL)
        goto cleanup;
    if (rel[0] == '/') {
        out = rel;
        rel = NULL;
        goto cleanup;
    }
    cwd = getcwd(NULL, 0);
    if (cwd == NULL) {
        /* Unreachable working directory: keep the relative form, which still works as
         * long as nobody changes directory. */
        out = rel;
        rel = NULL;
        goto cleanup;
    }
    out = strcmp(rel, ".") == 0 ? strdup(cwd) : path_join(cwd, rel);
cleanup:
    free(rel);
    free(cwd);
    return out;
}

/*
 * Resolves the file named by string setting S against the config directory into *out
 * (owned). With must_read, the file must be an existing, readable regular file; its
 * contents are left to proxy/tls.c.
 */
static int
setting_file(struct loader *ld, const config_setting_t *s, bool must_read, char **out)
{
    const char *v = NULL;
    char *p;
    struct stat st;
    int fd;

    if (setting_string(ld, s, &v) < 0)
        return -1;
    p = v[0] == '/' ? strdup(v) : path_join(ld->dir, v);
    if (p == NULL)
        return report_oom(ld, s);
    free(*out);
    *out = p;
    if (!must_read)
        return 0;
    /* O_NONBLOCK: a FIFO named by mistake must not hang the load. */
    fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return report(ld, s, NULL, "cannot read '%s': %s", p, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return report(ld, s, NULL, "'%s' is not a regular file", p);
    }
    close(fd);
    return 0;
}

/* ---- addresses ---------------------------------------------------------------------- */

static bool
valid_hostname(const char *h)
{
    size_t n = strlen(h);

    if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/*
 * Splits "HOST:PORT" ("[V6]:PORT", "*:PORT" for listeners). Listener hosts must be numeric
 * and are stored in canonical form; backend hosts may be names. On failure *why_out says
 * what is wrong and nothing is allocated.
 */
static int
address_parse(const char *text, bool listener, char **host_out, char **port_out,
              const char **why_out)
{
    const char *colon, *hs, *he;
    char host[256], canon[INET6_ADDRSTRLEN], portbuf[8];
    unsigned long port = 0;
    unsigned char bin[sizeof(struct in6_addr)];
    const char *h = host;
    char *hcopy = NULL, *pcopy = NULL;
    size_t hl;

    if (text[0] == '[') {
        hs = text + 1;
        he = strchr(hs, ']');
        if (he == NULL) {
            *why_out = "missing ']' after the IPv6 address";
            return -1;
        }
        if (he[1] != ':') {
            *why_out = "expected HOST:PORT, e.g. \"[::1]:443\"";
            return -1;
        }
        colon = he + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            *why_out = "missing port: expected HOST:PORT, e.g. \"0.0.0.0:443\"";
            return -1;
        }
        hs = text;
        he = colon;
        if (memchr(hs, ':', (size_t)(he - hs)) != NULL) {
            *why_out = "IPv6 addresses go in brackets, e.g. \"[::1]:443\"";
            return -1;
        }
    }
    hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(host)) {
        *why_out = "missing or overlong host: expected HOST:PORT";
        return -1;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';

    if (colon[1] == '\0' || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        *why_out = "the port must be a number from 0 to 65535";
        return -1;
    }
    for (const char *d = colon + 1; *d != '\0'; d++)
        port = port * 10 + (unsigned long)(*d - '0');
    if (port > 65535) {
        *why_out = "the port must be a number from 0 to 65535";
        return -1;
    }
    if (!listener && port == 0) {
        *why_out = "port 0 only makes sense for a listener";
        return -1;
    }

    if (text[0] == '[') {
        if (inet_pton(AF_INET6, host, bin) != 1) {
            *why_out = "not a numeric IPv6 address";
            return -1;
        }
        inet_ntop(AF_INET6, bin, canon, sizeof(canon));
        h = canon;
    } else if (listener) {
        if (strcmp(host, "*") == 0) {
            h = "0.0.0.0";
        } else if (inet_pton(AF_INET, host, bin) == 1) {
            inet_ntop(AF_INET, bin, canon, sizeof(canon));
            h = canon;
        } else {
            *why_out = "a listener needs a numeric address (\"0.0.0.0\", \"[::]\" or \"*\")";
            return -1;
        }
    } else if (!valid_hostname(host)) {
        *why_out = "not a valid host name or address";
        return -1;
    }

    snprintf(portbuf, sizeof(portbuf), "%lu", port);
    hcopy = strdup(h);
    pcopy = strdup(portbuf);
    if (hcopy == NULL || pcopy == NULL) {
        free(hcopy);
        free(pcopy);
        *why_out = "out of memory";
        return -1;
    }
    *host_out = hcopy;
    *port_out = pcopy;
    return 0;
}

/* ---- listeners ---------------------------------------------------------------------- */

static const char *const listener_keys[] = {"name",           "address",    "tls",
                                            "proxy_protocol", "proxy_from", NULL};
static const char *const listener_tls_keys[] = {
    "certs", "min_protocol", "max_protocol", "ciphers", "ciphersuites", "session_tickets", NULL};
static const char *const cert_keys[] = {"chain", "key", NULL};

static int
load_certs(struct loader *ld, const config_setting_t *tls, struct conf_listener *l)
{
    const config_setting_t *certs = config_setting_get_member(tls, "certs");
    int n;

    if (certs == NULL)
        return report(ld, tls, "certs",
                      "a TLS listener needs at least one certificate: "
                      "certs = ( { chain = \"...\"; key = \"...\"; } )");
    if (expect(ld, certs, CONFIG_TYPE_LIST, "a list of groups ( { chain = ...; key = ...; } )") < 0)
        return -1;
    n = config_setting_length(certs);
    if (n == 0)
        return report(ld, certs, NULL, "a TLS listener needs at least one certificate");
    l->certs = calloc((size_t)n, sizeof(*l->certs));
    if (l->certs == NULL)
        return report_oom(ld, certs);
    l->ncerts = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *c = config_setting_get_elem(certs, (unsigned)i);
        const config_setting_t *chain, *key;

        if (expect(ld, c, CONFIG_TYPE_GROUP, "a group { chain = ...; key = ...; }") < 0 ||
            check_keys(ld, c, cert_keys, NULL, NULL) < 0)
            return -1;
        if ((chain = require(ld, c, "chain")) == NULL || (key = require(ld, c, "key")) == NULL)
            return -1;
        if (setting_file(ld, chain, true, &l->certs[i].chain) < 0 ||
            setting_file(ld, key, true, &l->certs[i].key) < 0)
            return -1;
    }
    return 0;
}

/*
 * "A.B.C.D/N", "V6/N" or a bare address (a range of one). Bits past the prefix must be zero:
 * "10.0.0.1/24" is more likely a typo than a range.
 */
static int
cidr_parse(const char *text, struct conf_cidr *out, const char **why_out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    unsigned bits = 0;

    memset(out, 0, sizeof(*out));
    if (hlen == 0 || hlen >= sizeof(host)) {
        *why_out = "expected an address or ADDRESS/PREFIX";
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->v6 = false;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->v6 = true;
        out->bits = 128;
    } else {
        *why_out = "not a numeric IPv4 or IPv6 address";
        return -1;
    }
    if (slash != NULL) {
        const char *d = slash + 1;
        if (*d == '\0' || strlen(d) > 3 || (d[0] == '0' && d[1] != '\0')) {
            *why_out = "bad prefix length";
            return -1;
        }
        for (; *d != '\0'; d++) {
            if (*d < '0' || *d > '9') {
                *why_out = "bad prefix length";
                return -1;
            }
            bits = bits * 10 + (unsigned)(*d - '0');
        }
        if (bits > out->bits) {
            *why_out = out->v6 ? "prefix longer than 128" : "prefix longer than 32";
            return -1;
        }
        out->bits = bits;
    }
    for (unsigned i = out->bits; i < (out->v6 ? 128u : 32u); i++) {
        if (out->addr[i / 8] & (0x80 >> (i % 8))) {
            *why_out = "address has bits set past the prefix length";
            return -1;
        }
    }
    return 0;
}

/* proxy_protocol and proxy_from: a PROXY listener must name the balancers it trusts. */
static int
load_proxy_protocol(struct loader *ld, const config_setting_t *g, struct conf_listener *l)
{
    const config_setting_t *from = config_setting_get_member(g, "proxy_from");
    const config_setting_t *on = config_setting_get_member(g, "proxy_protocol");
    int n;

    if (opt_bool(ld, g, "proxy_protocol", &l->proxy_protocol) < 0)
        return -1;
    if (!l->proxy_protocol) {
        if (from != NULL)
            return report(ld, from, NULL, "only meaningful with proxy_protocol = true");
        return 0;
    }
    if (from == NULL)
        return report(ld, on, NULL,
                      "proxy_protocol needs proxy_from: the balancers' addresses, "
                      "proxy_from = [ \"10.0.0.0/24\" ]");
    if (expect_sequence(ld, from, "an array of \"ADDRESS/PREFIX\" strings [ ... ]") < 0)
        return -1;
    n = config_setting_length(from);
    if (n == 0)
        return report(ld, from, NULL, "at least one address range is required");
    l->proxy_from = calloc((size_t)n, sizeof(*l->proxy_from));
    if (l->proxy_from == NULL)
        return report_oom(ld, from);
    l->nproxy_from = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(from, (unsigned)i);
        const char *text = NULL, *why = NULL;
        if (setting_string(ld, e, &text) < 0)
            return -1;
        if (cidr_parse(text, &l->proxy_from[i], &why) < 0)
            return report(ld, e, NULL, "'%s': %s", text, why);
    }
    return 0;
}

static int
load_listener(struct loader *ld, const config_setting_t *g, struct conf_listener *l)
{
    const config_setting_t *s, *tls;
    const char *addr = NULL, *why = NULL;

    l->line = (int)config_setting_source_line(g);
    l->min_protocol = CONF_TLS12;
    l->max_protocol = CONF_TLS13;
    l->session_tickets = true;
    if (expect(ld, g, CONFIG_TYPE_GROUP, "a group { name = ...; address = ...; }") < 0 ||
        check_keys(ld, g, listener_keys, listener_tls_keys, "tls = { ... }") < 0)
        return -1;
    if ((s = require(ld, g, "name")) == NULL || setting_strdup(ld, s, &l->name) < 0)
        return -1;
    if ((s = require(ld, g, "address")) == NULL || setting_string(ld, s, &addr) < 0)
        return -1;
    if (address_parse(addr, true, &l->host, &l->port, &why) < 0)
        return report(ld, s, NULL, "'%s': %s", addr, why);
    if (load_proxy_protocol(ld, g, l) < 0)
        return -1;

    tls = config_setting_get_member(g, "tls");
    if (tls == NULL)
        return 0;
    l->tls = true;
    if (expect(ld, tls, CONFIG_TYPE_GROUP, "a group { certs = ...; }") < 0 ||
        check_keys(ld, tls, listener_tls_keys, cert_keys, "certs = ( { ... } )") < 0)
        return -1;
    if (load_certs(ld, tls, l) < 0 || tls_range(ld, tls, &l->min_protocol, &l->max_protocol) < 0)
        return -1;
    if (opt_strdup(ld, tls, "ciphers", &l->ciphers) < 0 ||
        opt_strdup(ld, tls, "ciphersuites", &l->ciphersuites) < 0 ||
        opt_bool(ld, tls, "session_tickets", &l->session_tickets) < 0)
        return -1;
    return 0;
}

/* ---- backends ----------------------------------------------------------------------- */

static const char *const backend_keys[] = {"name", "servers", "connect_timeout", "tcp_keepalive",
                                           "tls",  "health",  "balance",         NULL};
static const char *const health_keys[] = {"path", "interval", "timeout", "rise",
                                          "fall", "expect",   NULL};
static const char *const backend_tls_keys[] = {"ca",           "sni",          "verify",
                                               "min_protocol", "max_protocol", NULL};

static int
load_servers(struct loader *ld, const config_setting_t *g, struct conf_backend *b)
{
    const config_setting_t *list = require(ld, g, "servers");
    int n;

    if (list == NULL || expect_sequence(ld, list, "an array of \"HOST:PORT\" strings [ ... ]") < 0)
        return -1;
    n = config_setting_length(list);
    if (n == 0)
        return report(ld, list, NULL, "at least one server is required");
    if (n > CONF_MAX_SERVERS)
        return report(ld, list, NULL, "at most %d servers", CONF_MAX_SERVERS);
    b->servers = calloc((size_t)n, sizeof(*b->servers));
    if (b->servers == NULL)
        return report_oom(ld, list);
    b->nservers = (size_t)n;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        struct conf_server *sv = &b->servers[i];
        const char *text = NULL, *why = NULL;

        if (setting_string(ld, e, &text) < 0)
            return -1;
        if (address_parse(text, false, &sv->host, &sv->port, &why) < 0)
            return report(ld, e, NULL, "'%s': %s", text, why);
        for (int j = 0; j < i; j++) {
            if (strcasecmp(b->servers[j].host, sv->host) == 0 &&
                strcmp(b->servers[j].port, sv->port) == 0)
                return report(ld, e, NULL, "server '%s' is listed twice", text);
        }
    }
    return 0;
}

/* balance = "rendezvous" | "leastconn"; health = { path; interval; timeout; rise; fall; expect; }
 */
static int
load_health(struct loader *ld, const config_setting_t *g, struct conf_backend *b)
{
    const config_setting_t *s = config_setting_get_member(g, "balance"), *h;
    const char *v = NULL;
    size_t n;

    if (s != NULL) {
        if (setting_string(ld, s, &v) < 0)
            return -1;
        if (strcasecmp(v, "leastconn") == 0)
            b->balance = CONF_BALANCE_LEASTCONN;
        else if (strcasecmp(v, "rendezvous") != 0)
            return report(ld, s, NULL, "unknown balance '%s' (expected rendezvous or leastconn)",
                          v);
    }
    if ((h = config_setting_get_member(g, "health")) == NULL)
        return 0;
    b->checked = true;
    b->health = (struct conf_health){.interval_ms = DEF_HEALTH_INTERVAL_MS,
                                     .timeout_ms = DEF_HEALTH_TIMEOUT_MS,
                                     .rise = DEF_HEALTH_RISE,
                                     .fall = DEF_HEALTH_FALL,
                                     .expect = DEF_HEALTH_EXPECT};
    if (expect(ld, h, CONFIG_TYPE_GROUP, "a group { path = ...; interval = ...; }") < 0 ||
        check_keys(ld, h, health_keys, NULL, NULL) < 0 ||
        opt_strdup(ld, h, "path", &b->health.path) < 0 ||
        opt_duration(ld, h, "interval", false, &b->health.interval_ms) < 0 ||
        opt_duration(ld, h, "timeout", false, &b->health.timeout_ms) < 0)
        return -1;
    if (b->health.path == NULL && (b->health.path = strdup(DEF_HEALTH_PATH)) == NULL)
        return report_oom(ld, h);
    if (b->health.path[0] != '/')
        return report(ld, config_setting_get_member(h, "path"), NULL,
                      "'%s' does not start with '/'", b->health.path);
    if (b->health.interval_ms < 100)
        return report(ld, config_setting_get_member(h, "interval"), NULL, "at least 100ms");
    /* The default timeout shrinks to a shorter interval; one given explicitly must fit. */
    if (b->health.timeout_ms > b->health.interval_ms &&
        config_setting_get_member(h, "timeout") == NULL)
        b->health.timeout_ms = b->health.interval_ms;
    if (b->health.timeout_ms > b->health.interval_ms)
        return report(ld, config_setting_get_member(h, "timeout"), NULL,
                      "longer than the interval (%u ms)", b->health.interval_ms);
    n = b->health.rise;
    if (opt_size(ld, h, "rise", 1, 100, &n) < 0)
        return -1;
    b->health.rise = (unsigned)n;
    n = b->health.fall;
    if (opt_size(ld, h, "fall", 1, 100, &n) < 0)
        return -1;
    b->health.fall = (unsigned)n;
    n = (size_t)b->health.expect;
    if (opt_size(ld, h, "expect", 100, 599, &n) < 0)
        return -1;
    b->health.expect = (int)n;
    return 0;
}

static int
load_backend(struct loader *ld, const config_setting_t *g, struct conf_backend *b)
{
    const config_setting_t *s, *tls;

    b->line = (int)config_setting_source_line(g);
    b->verify = true;
    b->min_protocol = CONF_TLS12;
    b->max_protocol = CONF_TLS13;
    b->connect_timeout_ms = DEF_CONNECT_TIMEOUT_MS;
    b->tcp_keepalive = true;
    if (expect(ld, g, CONFIG_TYPE_GROUP, "a group { name = ...; servers = ...; }") < 0 ||
        check_keys(ld, g, backend_keys, backend_tls_keys, "tls = { ... }") < 0)
        return -1;
    if ((s = require(ld, g, "name")) == NULL || setting_strdup(ld, s, &b->name) < 0)
        return -1;
    if (load_servers(ld, g, b) < 0 ||
        opt_duration(ld, g, "connect_timeout", false, &b->connect_timeout_ms) < 0 ||
        opt_bool(ld, g, "tcp_keepalive", &b->tcp_keepalive) < 0)
        return -1;

    if (load_health(ld, g, b) < 0)
        return -1;

    tls = config_setting_get_member(g, "tls");
    if (tls == NULL)
        return 0;
    b->tls = true;
    if (expect(ld, tls, CONFIG_TYPE_GROUP, "a group { verify = ...; ... }") < 0 ||
        check_keys(ld, tls, backend_tls_keys, NULL, NULL) < 0)
        return -1;
    if ((s = config_setting_get_member(tls, "ca")) != NULL &&
        setting_file(ld, s, true, &b->ca_file) < 0)
        return -1;
    if (opt_strdup(ld, tls, "sni", &b->sni) < 0 || opt_bool(ld, tls, "verify", &b->verify) < 0 ||
        tls_range(ld, tls, &b->min_protocol, &b->max_protocol) < 0)
        return -1;
    return 0;
}

/* ---- routes ------------------------------------------------------------------------- */

static const char *const route_keys[] = {"path",           "backend",      "offer",        "bridge",
                                         "header_timeout", "idle_timeout", "body_timeout", "guard",
                                         "health_path",    "auth",         "edge",         NULL};
static const char *const route_edge_keys[] = {"offer",         "basic_realm", "delegation",
                                              "password_mech", "backend_spn", "realm",
                                              "ntlm_domain",   NULL};

static const struct {
    enum conf_scheme scheme;
    const char *name;
} schemes[] = {
    {CONF_SCHEME_NTLM, "NTLM"},     {CONF_SCHEME_NEGOTIATE, "Negotiate"},
    {CONF_SCHEME_BASIC, "Basic"},   {CONF_SCHEME_DIGEST, "Digest"},
    {CONF_SCHEME_BEARER, "Bearer"},
};
static const char *const scheme_names[] = {"NTLM", "Negotiate", "Basic", "Digest", "Bearer", NULL};

static const struct {
    enum conf_bridge bridge;
    const char *name;
} bridges[] = {
    {CONF_BRIDGE_NONE, "none"},
    {CONF_BRIDGE_NTLM_TO_NEGOTIATE, "ntlm-to-negotiate"},
    {CONF_BRIDGE_NEGOTIATE_TO_NTLM, "negotiate-to-ntlm"},
};

static int
load_offer(struct loader *ld, const config_setting_t *list, struct conf_route *r)
{
    int n;

    if (expect_sequence(ld, list, "an array of scheme names [ \"NTLM\", ... ]") < 0)
        return -1;
    n = config_setting_length(list);
    if (n > CONF_MAX_OFFER)
        return report(ld, list, NULL, "at most %d schemes may be offered", CONF_MAX_OFFER);
    r->offer_set = true;
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        const char *name = NULL, *hint;
        enum conf_scheme sch;

        if (setting_string(ld, e, &name) < 0)
            return -1;
        if (conf_scheme_parse(name, &sch) < 0) {
            hint = closest(name, scheme_names);
            if (hint != NULL)
                return report(ld, e, NULL, "unknown scheme '%s' (did you mean '%s'?)", name, hint);
            return report(ld, e, NULL,
                          "unknown scheme '%s' (expected NTLM, Negotiate, Basic, Digest or "
                          "Bearer)",
                          name);
        }
        for (size_t j = 0; j < r->noffer; j++)
            if (r->offer[j] == sch)
                return report(ld, e, NULL, "scheme '%s' is listed twice", name);
        r->offer[r->noffer++] = sch;
    }
    return 0;
}

static bool
offers(const struct conf_route *r, enum conf_scheme s)
{
    for (size_t i = 0; i < r->noffer; i++)
        if (r->offer[i] == s)
            return true;
    return false;
}

static int
load_bridge(struct loader *ld, const config_setting_t *g, struct conf_route *r)
{
    const config_setting_t *s = config_setting_get_member(g, "bridge");
    const char *v = NULL;
    size_t i;

    if (s == NULL)
        return 0;
    if (setting_string(ld, s, &v) < 0)
        return -1;
    for (i = 0; i < sizeof(bridges) / sizeof(bridges[0]); i++)
        if (strcasecmp(v, bridges[i].name) == 0)
            break;
    if (i == sizeof(bridges) / sizeof(bridges[0]))
        return report(ld, s, NULL,
                      "unknown bridge '%s' (expected none, ntlm-to-negotiate or "
                      "negotiate-to-ntlm)",
                      v);
    r->bridge = bridges[i].bridge;
    /* Without the client-side scheme in the offer list no client would ever start the
     * handshake the bridge translates. Pass-through (no offer key) is left alone. */
    if (r->offer_set && r->bridge == CONF_BRIDGE_NTLM_TO_NEGOTIATE && !offers(r, CONF_SCHEME_NTLM))
        return report(ld, s, NULL,
                      "ntlm-to-negotiate translates client NTLM, but offer does not include "
                      "NTLM, so no client would use it; add \"NTLM\" to offer");
    if (r->offer_set && r->bridge == CONF_BRIDGE_NEGOTIATE_TO_NTLM &&
        !offers(r, CONF_SCHEME_NEGOTIATE))
        return report(ld, s, NULL,
                      "negotiate-to-ntlm translates client Negotiate, but offer does not "
                      "include Negotiate, so no client would use it; add \"Negotiate\" to "
                      "offer");
    return 0;
}

static int
route_path_check(struct loader *ld, const config_setting_t *s, const char *p)
{
    if (strcmp(p, "default") == 0)
        return 0;
    if (p[0] != '/')
        return report(ld, s, NULL, "'%s': a route path starts with '/' or is \"default\"", p);
    if (strlen(p) > MAX_ROUTE_PATH)
        return report(ld, s, NULL, "longer than %d bytes", MAX_ROUTE_PATH);
    for (const char *c = p; *c != '\0'; c++) {
        if (*c == '?' || *c == '#' || (unsigned char)*c <= ' ' || (unsigned char)*c == 0x7f)
            return report(ld, s, NULL,
                          "'%s': a route path may not contain '?', '#', spaces or control "
                          "characters",
                          p);
    }
    return 0;
}

/* The offer list of an edge route: Negotiate and Basic only (NTLM is never taken at the edge:
 * exshim would need the user's NT hash, or a domain controller's netlogon, to check it). */
static int
load_edge_offer(struct loader *ld, const config_setting_t *list, struct conf_route_edge *e)
{
    int n;

    if (expect_sequence(ld, list, "an array of scheme names [ \"Negotiate\", \"Basic\" ]") < 0)
        return -1;
    n = config_setting_length(list);
    if (n == 0)
        return report(ld, list, NULL, "an edge route must offer Negotiate, Basic or both");
    e->offer_negotiate = e->offer_basic = false;
    for (int i = 0; i < n; i++) {
        const config_setting_t *el = config_setting_get_elem(list, (unsigned)i);
        const char *name = NULL;
        bool *slot;

        if (setting_string(ld, el, &name) < 0)
            return -1;
        if (strcasecmp(name, "Negotiate") == 0)
            slot = &e->offer_negotiate;
        else if (strcasecmp(name, "Basic") == 0)
            slot = &e->offer_basic;
        else if (strcasecmp(name, "NTLM") == 0)
            return report(ld, el, NULL,
                          "NTLM is not accepted at the edge (exshim cannot verify an NTLM "
                          "response without the user's key); offer Negotiate and Basic");
        else
            return report(ld, el, NULL, "unknown scheme '%s' (expected Negotiate or Basic)", name);
        if (*slot)
            return report(ld, el, NULL, "scheme '%s' is listed twice", name);
        *slot = true;
    }
    return 0;
}

static int
opt_choice(struct loader *ld, const config_setting_t *g, const char *name, const char *a,
           const char *b, int *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    const char *v = NULL;

    if (s == NULL)
        return 0;
    if (setting_string(ld, s, &v) < 0)
        return -1;
    if (strcasecmp(v, a) == 0)
        *out = 0;
    else if (strcasecmp(v, b) == 0)
        *out = 1;
    else
        return report(ld, s, NULL, "unknown value '%s' (expected %s or %s)", v, a, b);
    return 0;
}

/* auth = "edge" | "pass-through" and the route's edge = { ... } group. */
static int
load_route_auth(struct loader *ld, const config_setting_t *g, struct conf_route *r)
{
    const config_setting_t *s = config_setting_get_member(g, "auth"), *eg, *m;
    struct conf_route_edge *e = &r->edge;
    const char *v = NULL;
    int deleg = 0, mech = 0;

    if (s != NULL) {
        if (setting_string(ld, s, &v) < 0)
            return -1;
        if (strcasecmp(v, "edge") == 0)
            r->auth = CONF_AUTH_EDGE;
        else if (strcasecmp(v, "pass-through") == 0)
            r->auth = CONF_AUTH_PASS_THROUGH;
        else
            return report(ld, s, NULL, "unknown mode '%s' (expected edge or pass-through)", v);
    }
    eg = config_setting_get_member(g, "edge");
    if (r->auth != CONF_AUTH_EDGE) {
        if (eg != NULL)
            return report(ld, eg, NULL, "an edge group needs auth = \"edge\" on the route");
        return 0;
    }
    /* The client's credentials end at exshim: the backend's offers are never shown, so the
     * pass-through offer rewrite and the bridges have nothing to act on. */
    if ((m = config_setting_get_member(g, "offer")) != NULL)
        return report(ld, m, NULL,
                      "with auth = \"edge\" the offer goes inside edge = { offer = [ ... ]; }");
    if ((m = config_setting_get_member(g, "bridge")) != NULL)
        return report(ld, m, NULL, "bridges do not apply to auth = \"edge\" routes");
    if (eg == NULL)
        return report(ld, g, "edge",
                      "auth = \"edge\" needs edge = { backend_spn = \"HTTP@backend.host\"; }");
    if (expect(ld, eg, CONFIG_TYPE_GROUP, "a group { backend_spn = ...; ... }") < 0 ||
        check_keys(ld, eg, route_edge_keys, NULL, NULL) < 0)
        return -1;
    e->offer_negotiate = e->offer_basic = true;
    if ((m = config_setting_get_member(eg, "offer")) != NULL && load_edge_offer(ld, m, e) < 0)
        return -1;
    if (opt_strdup(ld, eg, "basic_realm", &e->basic_realm) < 0 ||
        opt_strdup(ld, eg, "realm", &e->realm) < 0 ||
        opt_strdup(ld, eg, "ntlm_domain", &e->ntlm_domain) < 0)
        return -1;
    if (e->basic_realm != NULL && strpbrk(e->basic_realm, "\"\\") != NULL)
        return report(ld, config_setting_get_member(eg, "basic_realm"), NULL,
                      "may not contain '\"' or '\\'");
    if (opt_choice(ld, eg, "delegation", "constrained", "password", &deleg) < 0 ||
        opt_choice(ld, eg, "password_mech", "kerberos", "ntlm", &mech) < 0)
        return -1;
    e->delegation = deleg ? CONF_EDGE_PASSWORD : CONF_EDGE_CONSTRAINED;
    e->password_mech = mech ? CONF_EDGE_PW_NTLM : CONF_EDGE_PW_KERBEROS;
    if ((m = config_setting_get_member(eg, "password_mech")) != NULL &&
        e->delegation != CONF_EDGE_PASSWORD)
        return report(ld, m, NULL, "password_mech applies to delegation = \"password\" only");
    if (e->delegation == CONF_EDGE_PASSWORD && !e->offer_basic)
        return report(ld, config_setting_get_member(eg, "delegation"), NULL,
                      "delegation = \"password\" needs the user's password: offer Basic");
    if ((s = require(ld, eg, "backend_spn")) == NULL || setting_strdup(ld, s, &e->backend_spn) < 0)
        return -1;
    if (strchr(e->backend_spn, '@') == NULL && strchr(e->backend_spn, '/') == NULL)
        return report(ld, s, NULL,
                      "'%s': expected a host-based service name, e.g. \"HTTP@backend.host\"",
                      e->backend_spn);
    return 0;
}

static int
load_route(struct loader *ld, const config_setting_t *g, struct conf_route *r)
{
    const config_setting_t *s;
    bool long_lived;

    r->line = (int)config_setting_source_line(g);
    if (expect(ld, g, CONFIG_TYPE_GROUP, "a group { path = ...; backend = ...; }") < 0 ||
        check_keys(ld, g, route_keys, NULL, NULL) < 0)
        return -1;
    if ((s = require(ld, g, "path")) == NULL || setting_strdup(ld, s, &r->path) < 0 ||
        route_path_check(ld, s, r->path) < 0)
        return -1;
    r->is_default = strcmp(r->path, "default") == 0;
    if ((s = require(ld, g, "backend")) == NULL || setting_strdup(ld, s, &r->backend_name) < 0)
        return -1;
    if ((s = config_setting_get_member(g, "offer")) != NULL && load_offer(ld, s, r) < 0)
        return -1;
    if (load_bridge(ld, g, r) < 0)
        return -1;

    long_lived = has_prefix_ci(r->path, "/rpc") || has_prefix_ci(r->path, "/mapi");
    r->header_timeout_ms = DEF_HEADER_TIMEOUT_MS;
    r->idle_timeout_ms = long_lived ? DEF_LONG_TIMEOUT_MS : DEF_IDLE_TIMEOUT_MS;
    r->body_timeout_ms = long_lived ? DEF_LONG_TIMEOUT_MS : DEF_BODY_TIMEOUT_MS;
    if (opt_duration(ld, g, "header_timeout", false, &r->header_timeout_ms) < 0 ||
        opt_duration(ld, g, "idle_timeout", false, &r->idle_timeout_ms) < 0 ||
        opt_duration(ld, g, "body_timeout", false, &r->body_timeout_ms) < 0)
        return -1;
    r->guard = true;
    if (opt_bool(ld, g, "guard", &r->guard) < 0 ||
        opt_strdup(ld, g, "health_path", &r->health_path) < 0)
        return -1;
    if (r->health_path != NULL && r->health_path[0] != '/')
        return report(ld, config_setting_get_member(g, "health_path"), NULL,
                      "'%s' does not start with '/'", r->health_path);
    return load_route_auth(ld, g, r);
}

/* ---- top level ---------------------------------------------------------------------- */

static const char *const top_keys[] = {"workers",          "log_file",
                                       "log_level",        "access_log",
                                       "max_header_bytes", "max_headers",
                                       "high_water",       "grace",
                                       "drain_timeout",    "max_generations",
                                       "listeners",        "backends",
                                       "routes",           "handshake_timeout",
                                       "max_connections",  "max_connections_per_client",
                                       "target_policy",    "edge",
                                       "metrics",          "max_accept",
                                       "max_handshakes",   "cpu_affinity",
                                       "accept_balance",   NULL};
static const char *const edge_keys[] = {"keytab", "principal", NULL};
/* Keys that only make sense inside a listener, backend or route. */
static const char *const nested_keys[] = {
    "name",           "address",    "tls",    "servers", "connect_timeout", "tcp_keepalive",
    "path",           "backend",    "offer",  "bridge",  "header_timeout",  "idle_timeout",
    "body_timeout",   "guard",      "health", "balance", "health_path",     "auth",
    "proxy_protocol", "proxy_from", NULL};

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static int
load_globals(struct loader *ld, const config_setting_t *root, struct conf *c)
{
    const config_setting_t *s;
    const char *v = NULL;

    c->workers = 0;
    c->log_level = CONF_LOG_INFO;
    c->access_log = true;
    c->max_header_bytes = DEF_MAX_HEADER_BYTES;
    c->max_headers = DEF_MAX_HEADERS;
    c->high_water = DEF_HIGH_WATER;
    c->grace_ms = DEF_GRACE_MS;
    c->handshake_timeout_ms = DEF_HANDSHAKE_TIMEOUT_MS;
    struct rlimit rl;
    /* exshim raises its soft limit to the hard one at start (proxy/main.c) */
    c->max_connections = conf_auto_max_connections(
        getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_max : 1024);
    c->max_connections_per_client = 0;
    c->max_accept = DEF_MAX_ACCEPT;
    c->max_handshakes = DEF_MAX_HANDSHAKES;
    c->target_policy = CONF_TARGET_STRICT;
    c->accept_balance = CONF_BALANCE_ROUNDROBIN;
    c->drain_timeout_ms = DEF_DRAIN_TIMEOUT_MS;
    c->max_generations = DEF_MAX_GENERATIONS;

    if ((s = config_setting_get_member(root, "workers")) != NULL) {
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            if (strcasecmp(config_setting_get_string(s), "auto") != 0)
                return report(ld, s, NULL, "expected \"auto\" or a number from 1 to %d",
                              MAX_WORKERS);
        } else if (config_setting_type(s) != CONFIG_TYPE_INT &&
                   config_setting_type(s) != CONFIG_TYPE_INT64) {
            return report(ld, s, NULL, "expected \"auto\" or a number from 1 to %d, found %s",
                          MAX_WORKERS, type_name(s));
        } else {
            size_t n = 0;
            if (opt_size(ld, root, "workers", 1, MAX_WORKERS, &n) < 0)
                return -1;
            c->workers = (int)n;
        }
    }
    if ((s = config_setting_get_member(root, "log_file")) != NULL &&
        setting_file(ld, s, false, &c->log_file) < 0)
        return -1;
    if ((s = config_setting_get_member(root, "log_level")) != NULL) {
        size_t i;
        if (setting_string(ld, s, &v) < 0)
            return -1;
        for (i = 0; log_levels[i] != NULL; i++)
            if (strcasecmp(v, log_levels[i]) == 0)
                break;
        if (log_levels[i] == NULL)
            return report(ld, s, NULL, "unknown level '%s' (expected error, warn, info or debug)",
                          v);
        c->log_level = (enum conf_log_level)((int)CONF_LOG_ERROR + (int)i);
    }
    if (opt_bool(ld, root, "access_log", &c->access_log) < 0 ||
        opt_bool(ld, root, "cpu_affinity", &c->cpu_affinity) < 0 ||
        opt_size(ld, root, "max_header_bytes", MIN_MAX_HEADER_BYTES, MAX_MAX_HEADER_BYTES,
                 &c->max_header_bytes) < 0 ||
        opt_size(ld, root, "max_headers", MIN_MAX_HEADERS, MAX_MAX_HEADERS, &c->max_headers) < 0 ||
        opt_size(ld, root, "high_water", MIN_HIGH_WATER, MAX_HIGH_WATER, &c->high_water) < 0 ||
        opt_duration(ld, root, "grace", true, &c->grace_ms) < 0 ||
        opt_duration(ld, root, "handshake_timeout", false, &c->handshake_timeout_ms) < 0 ||
        opt_size(ld, root, "max_connections", 1, MAX_MAX_CONNECTIONS, &c->max_connections) < 0 ||
        opt_size(ld, root, "max_connections_per_client", 0, MAX_MAX_CONNECTIONS,
                 &c->max_connections_per_client) < 0 ||
        opt_size(ld, root, "max_accept", 1, MAX_MAX_ACCEPT, &c->max_accept) < 0 ||
        opt_size(ld, root, "max_handshakes", 1, MAX_MAX_HANDSHAKES, &c->max_handshakes) < 0 ||
        opt_duration(ld, root, "drain_timeout", true, &c->drain_timeout_ms) < 0 ||
        opt_size(ld, root, "max_generations", 1, MAX_MAX_GENERATIONS, &c->max_generations) < 0)
        return -1;
    if ((s = config_setting_get_member(root, "target_policy")) != NULL) {
        if (setting_string(ld, s, &v) < 0)
            return -1;
        if (strcasecmp(v, "strict") == 0)
            c->target_policy = CONF_TARGET_STRICT;
        else if (strcasecmp(v, "normalize") == 0)
            c->target_policy = CONF_TARGET_NORMALIZE;
        else
            return report(ld, s, NULL, "unknown policy '%s' (expected strict or normalize)", v);
    }
    if ((s = config_setting_get_member(root, "accept_balance")) != NULL) {
        if (setting_string(ld, s, &v) < 0)
            return -1;
        if (strcasecmp(v, "roundrobin") == 0)
            c->accept_balance = CONF_BALANCE_ROUNDROBIN;
        else if (strcasecmp(v, "hash") == 0)
            c->accept_balance = CONF_BALANCE_HASH;
        else
            return report(ld, s, NULL, "unknown method '%s' (expected roundrobin or hash)", v);
    }
    return 0;
}

/* edge = { keytab = "..."; principal = "HTTP/proxy.example@REALM"; } */
static int
load_edge(struct loader *ld, const config_setting_t *root, struct conf *c)
{
    const config_setting_t *g = config_setting_get_member(root, "edge"), *s;

    if (g == NULL)
        return 0;
    c->edge_line = (int)config_setting_source_line(g);
    if (expect(ld, g, CONFIG_TYPE_GROUP, "a group { keytab = ...; principal = ...; }") < 0 ||
        check_keys(ld, g, edge_keys, route_edge_keys, "a route's edge = { ... }") < 0)
        return -1;
    if ((s = require(ld, g, "keytab")) == NULL || setting_file(ld, s, true, &c->edge_keytab) < 0)
        return -1;
    if ((s = require(ld, g, "principal")) == NULL || setting_strdup(ld, s, &c->edge_principal) < 0)
        return -1;
    return 0;
}

/*
 * The list NAME at the top level: *list_out is NULL and *n_out 0 when absent. An empty list
 * is reported here (line of the list); an absent one is left to the caller.
 */
static int
top_list(struct loader *ld, const config_setting_t *root, const char *name, const char *what,
         const config_setting_t **list_out, size_t *n_out)
{
    const config_setting_t *s = config_setting_get_member(root, name);

    *list_out = NULL;
    *n_out = 0;
    if (s == NULL)
        return report(ld, NULL, name, "at least one %s is required", what);
    if (expect(ld, s, CONFIG_TYPE_LIST, "a list of groups ( { ... }, ... )") < 0)
        return -1;
    if (config_setting_length(s) == 0)
        return report(ld, s, NULL, "at least one %s is required", what);
    *list_out = s;
    *n_out = (size_t)config_setting_length(s);
    return 0;
}

static const config_setting_t *
member_of(const config_setting_t *list, size_t i, const char *name)
{
    return config_setting_get_member(config_setting_get_elem(list, (unsigned)i), name);
}

static int
cross_check(struct loader *ld, const config_setting_t *ls, const config_setting_t *bs,
            const config_setting_t *rs, struct conf *c)
{
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        for (size_t j = 0; j < i; j++) {
            const struct conf_listener *o = &c->listeners[j];
            if (strcmp(l->name, o->name) == 0)
                return report(ld, member_of(ls, i, "name"), NULL,
                              "duplicate listener name '%s' (first at line %d)", l->name, o->line);
            /* SO_REUSEPORT would let both bind and silently split the traffic. */
            if (strcmp(l->port, "0") != 0 && strcmp(l->host, o->host) == 0 &&
                strcmp(l->port, o->port) == 0)
                return report(ld, member_of(ls, i, "address"), NULL,
                              "listener '%s' uses the same address as '%s' (line %d)", l->name,
                              o->name, o->line);
        }
    }
    for (size_t i = 0; i < c->nbackends; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->backends[i].name, c->backends[j].name) == 0)
                return report(ld, member_of(bs, i, "name"), NULL,
                              "duplicate backend name '%s' (first at line %d)", c->backends[i].name,
                              c->backends[j].line);

    for (size_t i = 0; i < c->nroutes; i++) {
        struct conf_route *r = &c->routes[i];
        size_t b;

        for (size_t j = 0; j < i; j++)
            if (strcasecmp(r->path, c->routes[j].path) == 0)
                return report(ld, member_of(rs, i, "path"), NULL,
                              "duplicate route '%s' (first at line %d; paths are compared "
                              "case-insensitively)",
                              r->path, c->routes[j].line);
        for (b = 0; b < c->nbackends; b++)
            if (strcmp(r->backend_name, c->backends[b].name) == 0)
                break;
        if (b == c->nbackends) {
            const char *best = NULL;
            size_t best_d = 3;
            for (size_t k = 0; k < c->nbackends; k++) {
                size_t d = edit_distance(r->backend_name, c->backends[k].name);
                if (d < best_d && d < strlen(c->backends[k].name)) {
                    best_d = d;
                    best = c->backends[k].name;
                }
            }
            if (best != NULL)
                return report(ld, member_of(rs, i, "backend"), NULL,
                              "no backend named '%s' (did you mean '%s'?)", r->backend_name, best);
            return report(ld, member_of(rs, i, "backend"), NULL, "no backend named '%s'",
                          r->backend_name);
        }
        r->backend = b;
        if (r->health_path != NULL && !c->backends[b].checked)
            return report(ld, member_of(rs, i, "health_path"), NULL,
                          "backend '%s' has no health group to check it with", c->backends[b].name);
        if (r->auth == CONF_AUTH_EDGE && c->edge_keytab == NULL)
            return report(ld, member_of(rs, i, "auth"), NULL,
                          "auth = \"edge\" needs the global edge = { keytab = \"...\"; "
                          "principal = \"HTTP/proxy.host@REALM\"; }");
    }
    return 0;
}

/* metrics = { address = "HOST:PORT"; } */
static int
load_metrics(struct loader *ld, const config_setting_t *root, struct conf *c)
{
    static const char *const keys[] = {"address", NULL};
    const config_setting_t *g = config_setting_get_member(root, "metrics"), *s;
    const char *addr = NULL, *why = NULL;

    if (g == NULL)
        return 0;
    if (expect(ld, g, CONFIG_TYPE_GROUP, "a group { address = \"HOST:PORT\"; }") < 0 ||
        check_keys(ld, g, keys, NULL, NULL) < 0)
        return -1;
    if ((s = require(ld, g, "address")) == NULL || setting_string(ld, s, &addr) < 0)
        return -1;
    if (address_parse(addr, true, &c->metrics_host, &c->metrics_port, &why) < 0)
        return report(ld, s, NULL, "'%s': %s", addr, why);
    return 0;
}

static int
load_tree(struct loader *ld, const config_setting_t *root, struct conf *c)
{
    const config_setting_t *ls, *bs, *rs;
    size_t n;

    if (check_keys(ld, root, top_keys, nested_keys, "a listener, backend or route") < 0 ||
        load_globals(ld, root, c) < 0 || load_edge(ld, root, c) < 0 ||
        load_metrics(ld, root, c) < 0)
        return -1;

    if (top_list(ld, root, "listeners", "listener", &ls, &n) < 0)
        return -1;
    if ((c->listeners = calloc(n, sizeof(*c->listeners))) == NULL)
        return report_oom(ld, ls);
    c->nlisteners = n;
    for (size_t i = 0; i < n; i++)
        if (load_listener(ld, config_setting_get_elem(ls, (unsigned)i), &c->listeners[i]) < 0)
            return -1;

    if (top_list(ld, root, "backends", "backend", &bs, &n) < 0)
        return -1;
    if ((c->backends = calloc(n, sizeof(*c->backends))) == NULL)
        return report_oom(ld, bs);
    c->nbackends = n;
    for (size_t i = 0; i < n; i++)
        if (load_backend(ld, config_setting_get_elem(bs, (unsigned)i), &c->backends[i]) < 0)
            return -1;

    if (top_list(ld, root, "routes", "route", &rs, &n) < 0)
        return -1;
    if ((c->routes = calloc(n, sizeof(*c->routes))) == NULL)
        return report_oom(ld, rs);
    c->nroutes = n;
    for (size_t i = 0; i < n; i++)
        if (load_route(ld, config_setting_get_elem(rs, (unsigned)i), &c->routes[i]) < 0)
            return -1;

    return cross_check(ld, ls, bs, rs, c);
}

/*
 * Reads the whole file into *text_out (owned, NUL-terminated). libconfig's own file reader
 * is avoided on purpose: its flex scanner calls exit() when read() fails (a directory, EIO),
 * and conf/ must never exit.
 */
static int
read_text(struct loader *ld, char **text_out)
{
    char *buf = NULL, *grown;
    size_t len = 0, cap = 0;
    struct stat st;
    int fd = -1, rc = -1;
    ssize_t n;

    fd = open(ld->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        report(ld, NULL, "(file)", "cannot open: %s", strerror(errno));
        goto cleanup;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        report(ld, NULL, "(file)", "is a directory");
        goto cleanup;
    }
    for (;;) {
        if (cap - len < 2) {
            if (cap >= MAX_FILE_BYTES) {
                report(ld, NULL, "(file)", "larger than %d bytes", MAX_FILE_BYTES);
                goto cleanup;
            }
            cap = cap == 0 ? 8192 : cap * 2;
            if ((grown = realloc(buf, cap)) == NULL) {
                report(ld, NULL, "(file)", "out of memory");
                goto cleanup;
            }
            buf = grown;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            report(ld, NULL, "(file)", "cannot read: %s", strerror(errno));
            goto cleanup;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (memchr(buf, '\0', len) != NULL) {
        report(ld, NULL, "(file)", "contains a NUL byte (not a text file?)");
        goto cleanup;
    }
    buf[len] = '\0';
    *text_out = buf;
    buf = NULL;
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

/*
 * Looks at the @include lines of the main file before libconfig does, for two libconfig
 * 1.5 traps: its scanner exit()s when read() fails, which is what happens on an include
 * that names a directory ("conf.d"), and it always prefixes the include directory, so
 * absolute names never work. Includes inside included files are not followed.
 */
static int
check_includes(struct loader *ld, const char *text)
{
    const char *p = text;
    unsigned line = 1;
    char *full = NULL;
    int rc = -1;

    for (; *p != '\0'; line++) {
        const char *eol = strchr(p, '\n');
        const char *end = eol != NULL ? eol : p + strlen(p);
        const char *q = p, *name, *close;
        struct stat st;

        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if ((size_t)(end - q) > 8 && strncmp(q, "@include", 8) == 0) {
            for (q += 8; q < end && (*q == ' ' || *q == '\t'); q++)
                ;
            name = q + 1;
            close = q < end && *q == '"' ? memchr(name, '"', (size_t)(end - name)) : NULL;
            if (close != NULL && name[0] == '/') {
                snprintf(ld->err, ld->errlen,
                         "%s:%u: (syntax): @include names are relative to the directory of "
                         "the config file; absolute names are not supported",
                         ld->path, line);
                goto cleanup;
            }
            if (close != NULL) {
                char *rel = strndup(name, (size_t)(close - name));
                free(full);
                full = rel != NULL ? path_join(ld->dir, rel) : NULL;
                free(rel);
                if (full == NULL) {
                    report(ld, NULL, "(file)", "out of memory");
                    goto cleanup;
                }
                if (stat(full, &st) == 0 && !S_ISREG(st.st_mode)) {
                    snprintf(ld->err, ld->errlen,
                             "%s:%u: (syntax): cannot include '%s': not a regular file", ld->path,
                             line, full);
                    goto cleanup;
                }
            }
        }
        p = eol != NULL ? eol + 1 : end;
    }
    rc = 0;
cleanup:
    if (rc < 0 && ld->err != NULL && ld->errlen > 0)
        one_line(ld->err);
    free(full);
    return rc;
}

/* ---- exported ----------------------------------------------------------------------- */

size_t
conf_auto_max_connections(unsigned long long nofile)
{
    if (nofile == (unsigned long long)RLIM_INFINITY || nofile / 2 > MAX_MAX_CONNECTIONS)
        return MAX_MAX_CONNECTIONS;
    if (nofile < CONF_FD_RESERVE + 4)
        return 1;
    return (size_t)((nofile - CONF_FD_RESERVE) / 2);
}

int
conf_load(const char *path, struct conf **conf_out, char *err, size_t errlen)
{
    struct loader ld = {.path = path, .dir = NULL, .err = err, .errlen = err != NULL ? errlen : 0};
    struct conf *c = NULL;
    config_t cf;
    char *text = NULL;
    int rc = -1;

    config_init(&cf);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || conf_out == NULL) {
        report(&ld, NULL, "(file)", "no configuration file given");
        goto cleanup;
    }
    ld.dir = config_dir(path);
    c = calloc(1, sizeof(*c));
    if (ld.dir == NULL || c == NULL || (c->file = strdup(path)) == NULL) {
        report(&ld, NULL, "(file)", "out of memory");
        goto cleanup;
    }
    if (read_text(&ld, &text) < 0 || check_includes(&ld, text) < 0)
        goto cleanup;
    config_set_include_dir(&cf, ld.dir);
    if (config_read_string(&cf, text) != CONFIG_TRUE) {
        char fbuf[PATH_MAX];
        const char *efile = config_error_file(&cf) != NULL
                                ? source_name(&ld, config_error_file(&cf), fbuf, sizeof(fbuf))
                                : path;
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s:%d: (%s): %s", efile, config_error_line(&cf),
                     config_error_type(&cf) == CONFIG_ERR_FILE_IO ? "file" : "syntax",
                     config_error_text(&cf) != NULL ? config_error_text(&cf) : "cannot parse");
        if (err != NULL && errlen > 0)
            one_line(err);
        goto cleanup;
    }
    if (load_tree(&ld, config_root_setting(&cf), c) < 0)
        goto cleanup;

    *conf_out = c;
    c = NULL;
    rc = 0;
cleanup:
    free(text);
    config_destroy(&cf);
    conf_free(c);
    free(ld.dir);
    return rc;
}

void
conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nlisteners; i++) {
        struct conf_listener *l = &c->listeners[i];
        for (size_t j = 0; j < l->ncerts; j++) {
            free(l->certs[j].chain);
            free(l->certs[j].key);
        }
        free(l->certs);
        free(l->name);
        free(l->host);
        free(l->port);
        free(l->ciphers);
        free(l->ciphersuites);
        free(l->proxy_from);
    }
    free(c->listeners);
    free(c->metrics_host);
    free(c->metrics_port);
    for (size_t i = 0; i < c->nbackends; i++) {
        struct conf_backend *b = &c->backends[i];
        for (size_t j = 0; j < b->nservers; j++) {
            free(b->servers[j].host);
            free(b->servers[j].port);
        }
        free(b->servers);
        free(b->name);
        free(b->ca_file);
        free(b->sni);
        free(b->health.path);
    }
    free(c->backends);
    for (size_t i = 0; i < c->nroutes; i++) {
        free(c->routes[i].path);
        free(c->routes[i].backend_name);
        free(c->routes[i].health_path);
        free(c->routes[i].edge.basic_realm);
        free(c->routes[i].edge.backend_spn);
        free(c->routes[i].edge.realm);
        free(c->routes[i].edge.ntlm_domain);
    }
    free(c->routes);
    free(c->log_file);
    free(c->edge_keytab);
    free(c->edge_principal);
    free(c->file);
    free(c);
}

int
conf_parse_duration(const char *text, unsigned *ms_out)
{
    static const struct {
        const char *suffix;
        unsigned long long ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    unsigned long long n = 0;
    const char *p = text;

    if (text == NULL || ms_out == NULL || !(*p >= '0' && *p <= '9'))
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (unsigned long long)(*p - '0');
        if (n > UINT_MAX)
            return -1;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].suffix) == 0) {
            if (n > UINT_MAX / units[i].ms)
                return -1;
            *ms_out = (unsigned)(n * units[i].ms);
            return 0;
        }
    }
    return -1;
}

int
conf_scheme_parse(const char *name, enum conf_scheme *out)
{
    for (size_t i = 0; name != NULL && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strcasecmp(name, schemes[i].name) == 0) {
            *out = schemes[i].scheme;
            return 0;
        }
    }
    return -1;
}

const char *
conf_scheme_name(enum conf_scheme s)
{
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (schemes[i].scheme == s)
            return schemes[i].name;
    return "unknown";
}

/* Does route prefix P (length PL) cover the request path Q (length QL)? */
static bool
prefix_covers(const char *p, size_t pl, const char *q, size_t ql)
{
    if (pl > ql || strncasecmp(p, q, pl) != 0)
        return false;
    return pl == ql || q[pl] == '/' || (pl > 0 && p[pl - 1] == '/');
}

const struct conf_route *
conf_route_find(const struct conf *conf, const char *path, size_t len)
{
    const struct conf_route *best = NULL, *fallback = NULL;
    size_t best_len = 0;
    const char *q;

    if (conf == NULL)
        return NULL;
    if (path == NULL)
        len = 0;
    q = len > 0 ? memchr(path, '?', len) : NULL;
    if (q != NULL)
        len = (size_t)(q - path);
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct conf_route *r = &conf->routes[i];
        size_t pl;

        if (r->is_default) {
            fallback = r;
            continue;
        }
        pl = strlen(r->path);
        if (pl > best_len && len > 0 && prefix_covers(r->path, pl, path, len)) {
            best = r;
            best_len = pl;
        }
    }
    return best != NULL ? best : fallback;
}
