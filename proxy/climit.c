/* Connections per client address. See climit.h. */
#include "proxy/climit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 48 /* an IPv6 address as text is at most 45 bytes */

struct entry {
    char key[KEY_MAX];
    size_t count; /* 0: slot free */
};

struct climit {
    struct entry *e;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t used, max_used;
    size_t limit;
};

static size_t
hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *k != '\0'; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

struct climit *
climit_new(size_t max_entries, size_t limit)
{
    struct climit *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    size_t cap = 16;
    /* Half full at most, so probes stay short. */
    while (cap < 2 * max_entries && cap < ((size_t)1 << 30))
        cap <<= 1;
    t->e = calloc(cap, sizeof(*t->e));
    if (t->e == NULL) {
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    t->max_used = max_entries;
    t->limit = limit;
    return t;
}

void
climit_free(struct climit *t)
{
    if (t == NULL)
        return;
    free(t->e);
    free(t);
}

/* Slot of addr, or of the free slot where it would go. */
static size_t
find(const struct climit *t, const char *addr)
{
    size_t i = hash_key(addr) & t->mask;
    while (t->e[i].count > 0 && strcmp(t->e[i].key, addr) != 0)
        i = (i + 1) & t->mask;
    return i;
}

bool
climit_acquire(struct climit *t, const char *addr)
{
    if (strlen(addr) >= KEY_MAX)
        return false;
    size_t i = find(t, addr);
    struct entry *e = &t->e[i];
    if (e->count > 0) {
        if (e->count >= t->limit)
            return false;
        e->count++;
        return true;
    }
    if (t->used >= t->max_used || t->limit == 0)
        return false;
    memcpy(e->key, addr, strlen(addr) + 1);
    e->count = 1;
    t->used++;
    return true;
}

void
climit_release(struct climit *t, const char *addr)
{
    size_t i = find(t, addr);
    if (t->e[i].count == 0)
        return;
    if (--t->e[i].count > 0)
        return;
    t->used--;
    /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->e[j].count == 0)
            break;
        size_t home = hash_key(t->e[j].key) & t->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        t->e[i] = t->e[j];
        t->e[j].count = 0;
        i = j;
    }
}

size_t
climit_count(const struct climit *t, const char *addr)
{
    if (strlen(addr) >= KEY_MAX)
        return 0;
    return t->e[find(t, addr)].count;
}
