/*
 * libFuzzer target for conf_load(): arbitrary bytes as a config file.
 *
 * conf.c is compiled into this file (the Makefile's fuzz rule links only the parser sources).
 * The input lives in a memfd and is loaded through /proc/self/fd/N, so no file is written.
 * Inputs using @include are skipped: they would make libconfig read arbitrary files.
 *
 * Properties checked besides the absence of crashes and leaks:
 *   - failure: one non-empty line starting with "PATH:", and *conf_out untouched;
 *   - success: the cross-field invariants conf.h promises (backend indices, TLS ranges,
 *     non-zero timeouts, certificates on TLS listeners), and every non-default route is
 *     the one conf_route_find() returns for its own path.
 */
#include "conf/conf.c"

#include <assert.h>
#include <stdint.h>
#include <sys/mman.h>

/*
 * libconfig 1.5's scanner leaks the buffer of a string token when a syntax error follows
 * it (smallest input: s={""); reproduced with libconfig alone, without conf.c. Leaks
 * allocated inside libconfig are hidden here; everything conf.c allocates itself, and a
 * missing config_destroy(), still show up (and in the unit tests nothing is hidden).
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
    return "leak:libconfig.so\n";
}

static void
check_conf(const struct conf *c)
{
    assert(c->nlisteners > 0 && c->nbackends > 0 && c->nroutes > 0);
    assert(c->workers >= 0 && c->workers <= MAX_WORKERS);
    for (size_t i = 0; i < c->nlisteners; i++) {
        const struct conf_listener *l = &c->listeners[i];
        assert(l->name != NULL && l->host != NULL && l->port != NULL);
        assert(!l->tls || l->ncerts > 0);
        assert(l->min_protocol <= l->max_protocol);
    }
    for (size_t i = 0; i < c->nbackends; i++) {
        const struct conf_backend *b = &c->backends[i];
        assert(b->name != NULL && b->nservers > 0 && b->connect_timeout_ms > 0);
        assert(b->min_protocol <= b->max_protocol);
        for (size_t k = 0; k < b->nservers; k++)
            assert(strcmp(b->servers[k].port, "0") != 0);
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct conf_route *r = &c->routes[i];
        assert(r->backend < c->nbackends);
        assert(strcmp(r->backend_name, c->backends[r->backend].name) == 0);
        assert(r->noffer <= CONF_MAX_OFFER && (r->offer_set || r->noffer == 0));
        assert(r->header_timeout_ms > 0 && r->idle_timeout_ms > 0 && r->body_timeout_ms > 0);
        if (!r->is_default)
            assert(conf_route_find(c, r->path, strlen(r->path)) == r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char path[64], err[512];
    struct conf *sentinel = (struct conf *)&fd, *c = sentinel;
    char *text;
    int rc;

    if (fd < 0)
        fd = memfd_create("fuzz_conf", MFD_CLOEXEC);
    assert(fd >= 0);
    if (memmem(data, size, "@include", 8) != NULL)
        return 0;
    assert(ftruncate(fd, 0) == 0);
    assert(pwrite(fd, data, size, 0) == (ssize_t)size);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

    rc = conf_load(path, &c, err, sizeof(err));
    if (rc == 0) {
        assert(c != sentinel && c != NULL);
        check_conf(c);
        conf_free(c);
    } else {
        assert(rc == -1 && c == sentinel);
        assert(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
        assert(strchr(err, '\n') == NULL);
    }

    /* The same bytes as a duration. */
    text = malloc(size + 1);
    if (text != NULL) {
        unsigned ms = 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (conf_parse_duration(text, &ms) == 0)
            assert(text[0] >= '0' && text[0] <= '9');
        free(text);
    }
    return 0;
}
