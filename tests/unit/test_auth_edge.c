/*
 * Unit tests for auth/edge.c: the edge state machine over a fake GSS layer. Every authgss_*
 * call edge.c makes is replaced at link time (-Wl,--wrap, see the Makefile), so these tests
 * need neither a KDC nor a keytab. free() is wrapped too: whenever memory that held a password
 * handed to the fake GSS layer is freed, its bytes must already be zero.
 *
 * The fakes count the objects alive, remember which connection made each credential, and
 * follow a small script per test (what the next accept/init step answers).
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/b64.h"
#include "auth/edge.h"

/* ---- the fake GSS layer ----------------------------------------------------------------- */

#define MAX_STEPS 8
#define MAX_TRACKED 16

struct fake_step {
    enum authgss_status st;
    const char *out; /* output token bytes (NULL: none) */
    const char *client;
    enum authgss_why why;
};

struct authgss_accept {
    int magic, conn, steps;
    const char *client;
    bool spnego, done, taken;
};

struct authgss_cred {
    int magic, conn;
    enum authgss_cred_kind kind;
    char name[128];
};

struct authgss_init {
    int magic, conn, steps;
    struct authgss_cred *cred;
    char target[64];
    bool cb;
};

#define MAGIC_ACCEPT 0xacce
#define MAGIC_CRED 0xc4ed
#define MAGIC_INIT 0x1417

static struct {
    int conn; /* the connection the test is acting for now */
    int live_accept, live_cred, live_init;
    /* accept */
    struct fake_step accept[MAX_STEPS];
    int naccept, accept_pos;
    size_t accept_cb_len; /* channel-binding hash length the last accept step got */
    uint8_t accept_cb0;
    enum authgss_why take_why; /* NONE: the credential comes */
    /* verify_password */
    enum authgss_why verify_why;
    int verify_calls;
    char verify_user[128];
    bool verify_cached;
    /* credentials */
    enum authgss_why cred_why;
    int impersonate_calls, pw_krb5_calls, pw_ntlm_calls;
    char last_cred_user[128];
    /* init */
    struct fake_step init[MAX_STEPS];
    int ninit, init_pos;
    int init_news;
    int init_cred_conn; /* conn of the credential the last init_new got */
    char init_target[64];
    bool init_cb;
    /* passwords handed to the fake layer: their memory must be zero when freed */
    struct {
        const char *p;
        size_t len;
    } tracked[MAX_TRACKED];
    int ntracked;
    int dirty_frees;
} F;

static void
fake_reset(void)
{
    memset(&F, 0, sizeof(F));
}

static void
track_password(const char *p, size_t len)
{
    if (F.ntracked < MAX_TRACKED) {
        F.tracked[F.ntracked].p = p;
        F.tracked[F.ntracked].len = len;
        F.ntracked++;
    }
}

void __real_free(void *p);
void __wrap_free(void *p);
void
__wrap_free(void *p)
{
    if (p != NULL && F.ntracked > 0) {
        const char *b = p, *end = b + malloc_usable_size(p);
        for (int i = 0; i < F.ntracked; i++) {
            if (F.tracked[i].p >= b && F.tracked[i].p < end) {
                for (size_t j = 0; j < F.tracked[i].len; j++)
                    if (F.tracked[i].p[j] != 0) {
                        F.dirty_frees++;
                        break;
                    }
                F.tracked[i] = F.tracked[--F.ntracked];
                i--;
            }
        }
    }
    __real_free(p);
}

static void
set_err(struct authgss_error *err, enum authgss_why why)
{
    err->why = why;
    snprintf(err->text, sizeof(err->text), "%s: fake", authgss_why_words(why));
}

static uint8_t *
copy_out(const char *s, size_t *len)
{
    uint8_t *p;
    *len = 0;
    if (s == NULL)
        return NULL;
    *len = strlen(s);
    p = malloc(*len);
    memcpy(p, s, *len);
    return p;
}

struct authgss_accept *__wrap_authgss_accept_new(struct authgss_acceptor *acc);
struct authgss_accept *
__wrap_authgss_accept_new(struct authgss_acceptor *acc)
{
    struct authgss_accept *a = calloc(1, sizeof(*a));
    a->magic = MAGIC_ACCEPT;
    a->conn = F.conn;
    F.live_accept++;
    return a;
}

void __wrap_authgss_accept_free(struct authgss_accept *a);
void
__wrap_authgss_accept_free(struct authgss_accept *a)
{
    if (a == NULL)
        return;
    assert_int_equal(a->magic, MAGIC_ACCEPT);
    a->magic = 0;
    F.live_accept--;
    free(a);
}

enum authgss_status __wrap_authgss_accept_step(struct authgss_accept *a, const uint8_t *in,
                                               size_t len, const uint8_t *cb_hash,
                                               size_t cb_hash_len, uint8_t **out, size_t *outlen,
                                               struct authgss_error *err);
enum authgss_status
__wrap_authgss_accept_step(struct authgss_accept *a, const uint8_t *in, size_t len,
                           const uint8_t *cb_hash, size_t cb_hash_len, uint8_t **out,
                           size_t *outlen, struct authgss_error *err)
{
    assert_int_equal(a->magic, MAGIC_ACCEPT);
    assert_int_equal(a->conn, F.conn); /* a context serves the connection that made it */
    assert_true(F.accept_pos < F.naccept);
    const struct fake_step *s = &F.accept[F.accept_pos++];
    F.accept_cb_len = cb_hash != NULL ? cb_hash_len : 0;
    F.accept_cb0 = cb_hash != NULL ? cb_hash[0] : 0;
    if (a->steps++ == 0)
        a->spnego = len > 0 && in[0] == 0x60;
    *out = copy_out(s->out, outlen);
    if (s->st == AUTHGSS_FAIL)
        set_err(err, s->why);
    if (s->st == AUTHGSS_DONE) {
        a->done = true;
        a->client = s->client;
    }
    return s->st;
}

const char *__wrap_authgss_accept_client(const struct authgss_accept *a);
const char *
__wrap_authgss_accept_client(const struct authgss_accept *a)
{
    return a->done ? a->client : NULL;
}

bool __wrap_authgss_accept_spnego(const struct authgss_accept *a);
bool
__wrap_authgss_accept_spnego(const struct authgss_accept *a)
{
    return a->spnego;
}

static struct authgss_cred *
fake_cred(enum authgss_cred_kind kind, const char *name)
{
    struct authgss_cred *c = calloc(1, sizeof(*c));
    c->magic = MAGIC_CRED;
    c->conn = F.conn;
    c->kind = kind;
    snprintf(c->name, sizeof(c->name), "%s", name);
    F.live_cred++;
    return c;
}

struct authgss_cred *__wrap_authgss_accept_take_cred(struct authgss_accept *a,
                                                     struct authgss_error *err);
struct authgss_cred *
__wrap_authgss_accept_take_cred(struct authgss_accept *a, struct authgss_error *err)
{
    assert_true(a->done);
    assert_false(a->taken);
    a->taken = true;
    if (F.take_why != AUTHGSS_WHY_NONE) {
        set_err(err, F.take_why);
        return NULL;
    }
    return fake_cred(AUTHGSS_CRED_PROXY, a->client);
}

int __wrap_authgss_verify_password(struct authgss_acceptor *acc, const char *user, const char *pw,
                                   size_t pwlen, bool *cached_out, struct authgss_error *err);
int
__wrap_authgss_verify_password(struct authgss_acceptor *acc, const char *user, const char *pw,
                               size_t pwlen, bool *cached_out, struct authgss_error *err)
{
    F.verify_calls++;
    snprintf(F.verify_user, sizeof(F.verify_user), "%s", user);
    track_password(pw, pwlen);
    if (cached_out != NULL)
        *cached_out = F.verify_cached;
    if (F.verify_why != AUTHGSS_WHY_NONE) {
        set_err(err, F.verify_why);
        return -1;
    }
    return 0;
}

struct authgss_cred *__wrap_authgss_cred_impersonate(struct authgss_acceptor *acc, const char *user,
                                                     struct authgss_error *err);
struct authgss_cred *
__wrap_authgss_cred_impersonate(struct authgss_acceptor *acc, const char *user,
                                struct authgss_error *err)
{
    F.impersonate_calls++;
    snprintf(F.last_cred_user, sizeof(F.last_cred_user), "%s", user);
    if (F.cred_why != AUTHGSS_WHY_NONE) {
        set_err(err, F.cred_why);
        return NULL;
    }
    return fake_cred(AUTHGSS_CRED_IMPERSONATED, user);
}

struct authgss_cred *__wrap_authgss_cred_password_krb5(const char *principal, const char *pw,
                                                       size_t pwlen, struct authgss_error *err);
struct authgss_cred *
__wrap_authgss_cred_password_krb5(const char *principal, const char *pw, size_t pwlen,
                                  struct authgss_error *err)
{
    F.pw_krb5_calls++;
    snprintf(F.last_cred_user, sizeof(F.last_cred_user), "%s", principal);
    track_password(pw, pwlen);
    return fake_cred(AUTHGSS_CRED_PASSWORD_KRB5, principal);
}

struct authgss_cred *__wrap_authgss_cred_password_ntlm(const char *domain, const char *user,
                                                       const char *pw, size_t pwlen,
                                                       struct authgss_error *err);
struct authgss_cred *
__wrap_authgss_cred_password_ntlm(const char *domain, const char *user, const char *pw,
                                  size_t pwlen, struct authgss_error *err)
{
    char n[96];
    F.pw_ntlm_calls++;
    snprintf(n, sizeof(n), "%s\\%s", domain, user);
    snprintf(F.last_cred_user, sizeof(F.last_cred_user), "%s", n);
    assert_int_equal(pwlen, strlen(pw));
    track_password(pw, pwlen);
    return fake_cred(AUTHGSS_CRED_PASSWORD_NTLM, n);
}

void __wrap_authgss_cred_free(struct authgss_cred *c);
void
__wrap_authgss_cred_free(struct authgss_cred *c)
{
    if (c == NULL)
        return;
    assert_int_equal(c->magic, MAGIC_CRED);
    c->magic = 0;
    F.live_cred--;
    free(c);
}

const char *__wrap_authgss_cred_name(const struct authgss_cred *c);
const char *
__wrap_authgss_cred_name(const struct authgss_cred *c)
{
    assert_int_equal(c->magic, MAGIC_CRED);
    return c->name;
}

enum authgss_mech __wrap_authgss_cred_mech(const struct authgss_cred *c);
enum authgss_mech
__wrap_authgss_cred_mech(const struct authgss_cred *c)
{
    assert_int_equal(c->magic, MAGIC_CRED);
    return c->kind == AUTHGSS_CRED_PASSWORD_NTLM ? AUTHGSS_MECH_NTLM : AUTHGSS_MECH_KRB5;
}

struct authgss_init *__wrap_authgss_init_new(struct authgss_cred *cred, const char *target,
                                             const uint8_t *cb_hash, size_t cb_hash_len,
                                             struct authgss_error *err);
struct authgss_init *
__wrap_authgss_init_new(struct authgss_cred *cred, const char *target, const uint8_t *cb_hash,
                        size_t cb_hash_len, struct authgss_error *err)
{
    assert_int_equal(cred->magic, MAGIC_CRED);
    struct authgss_init *i = calloc(1, sizeof(*i));
    i->magic = MAGIC_INIT;
    i->conn = F.conn;
    i->cred = cred;
    snprintf(i->target, sizeof(i->target), "%s", target);
    F.init_news++;
    F.init_cred_conn = cred->conn;
    snprintf(F.init_target, sizeof(F.init_target), "%s", target);
    F.init_cb = cb_hash != NULL;
    F.live_init++;
    return i;
}

void __wrap_authgss_init_free(struct authgss_init *i);
void
__wrap_authgss_init_free(struct authgss_init *i)
{
    if (i == NULL)
        return;
    assert_int_equal(i->magic, MAGIC_INIT);
    i->magic = 0;
    F.live_init--;
    free(i);
}

enum authgss_status __wrap_authgss_init_step(struct authgss_init *i, const uint8_t *in, size_t len,
                                             uint8_t **out, size_t *outlen,
                                             struct authgss_error *err);
enum authgss_status
__wrap_authgss_init_step(struct authgss_init *i, const uint8_t *in, size_t len, uint8_t **out,
                         size_t *outlen, struct authgss_error *err)
{
    assert_int_equal(i->magic, MAGIC_INIT);
    assert_int_equal(i->cred->magic, MAGIC_CRED); /* the credential is still alive */
    assert_int_equal(i->cred->conn, i->conn);     /* and belongs to this connection */
    assert_true(F.init_pos < F.ninit);
    const struct fake_step *s = &F.init[F.init_pos++];
    /* the first step has no input; later steps get the backend's token */
    if (i->steps++ == 0)
        assert_null(in);
    else
        assert_non_null(in);
    *out = copy_out(s->out, outlen);
    if (s->st == AUTHGSS_FAIL)
        set_err(err, s->why);
    return s->st;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static const struct edge_env env = {.acceptor = NULL};

static const struct edge_policy pol_both = {
    .offer_negotiate = true,
    .offer_basic = true,
    .basic_realm = "mail.example",
    .delegation = EDGE_DELEG_CONSTRAINED,
    .backend_spn = "HTTP@backend.lab.test",
    .kerberos_realm = "LAB.TEST",
    .ntlm_domain = "LAB",
};

static char *
b64(const char *s)
{
    static char buf[4][512];
    static int k;
    char *o = buf[k++ % 4];
    size_t n = 0;
    assert_int_equal(authb64_encode((const uint8_t *)s, strlen(s), o, 512, &n), 0);
    return o;
}

/* "Scheme <base64 of s>" in a static buffer */
static const char *
cred_of(const char *scheme, const char *s)
{
    static char buf[4][600];
    static int k;
    char *o = buf[k++ % 4];
    snprintf(o, 600, "%s %s", scheme, b64(s));
    return o;
}

static int
req(struct edge *e, const struct edge_policy *p, const char *authz, bool tls,
    struct edge_req_out *out)
{
    return edge_request(e, p, authz, authz ? strlen(authz) : 0, tls, out);
}

static int
resp(struct edge *e, int status, const char *www, struct edge_resp_out *out)
{
    struct edge_slice s = {www, www ? strlen(www) : 0};
    return edge_response(e, status, &s, www ? 1 : 0, out);
}

static void
script_accept(enum authgss_status st, const char *out, const char *client)
{
    F.accept[F.naccept++] = (struct fake_step){st, out, client, AUTHGSS_WHY_NONE};
}

static void
script_init(enum authgss_status st, const char *out, enum authgss_why why)
{
    F.init[F.ninit++] = (struct fake_step){st, out, NULL, why};
}

static int
setup(void **state)
{
    fake_reset();
    return 0;
}

static int
teardown(void **state)
{
    /* nothing survives its connection */
    assert_int_equal(F.live_accept, 0);
    assert_int_equal(F.live_cred, 0);
    assert_int_equal(F.live_init, 0);
    assert_int_equal(F.dirty_frees, 0);
    assert_int_equal(F.ntracked, 0);
    return 0;
}

/* A full Negotiate login of client on e, through a 200 with mutual auth. */
static void
negotiate_login(struct edge *e, const char *client, bool expect_fresh)
{
    struct edge_req_out r;
    struct edge_resp_out o;
    script_accept(AUTHGSS_DONE, "AP-REP-for-client", client);
    script_init(AUTHGSS_CONTINUE, "AP-REQ-for-backend", AUTHGSS_WHY_NONE);
    script_init(AUTHGSS_DONE, NULL, AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60krb5-token"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_int_equal(r.fresh_backend, expect_fresh);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD);
    assert_string_equal(r.authorization, cred_of("Negotiate", "AP-REQ-for-backend"));
    edge_req_clear(&r);
    assert_int_equal(resp(e, 200, cred_of("Negotiate", "AP-REP-from-backend"), &o), 0);
    assert_int_equal(o.action, EDGE_RESP_PASS);
    assert_string_equal(o.client_www, cred_of("Negotiate", "AP-REP-for-client"));
    assert_true(o.trace_done);
    edge_resp_clear(&o);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* What each connection gets without credentials, per policy and transport. */
static void
test_offers(void **state)
{
    static const struct {
        const char *name;
        bool negotiate, basic, tls;
        enum edge_action action;
        const char *www[2];
    } cases[] = {
        {"both, TLS", true, true, true, EDGE_LOCAL_401, {"Negotiate", "Basic realm=\"r\""}},
        {"both, plain: no Basic", true, true, false, EDGE_LOCAL_401, {"Negotiate", NULL}},
        {"Basic only, TLS", false, true, true, EDGE_LOCAL_401, {"Basic realm=\"r\"", NULL}},
        {"Basic only, plain: nothing", false, true, false, EDGE_LOCAL_403, {NULL, NULL}},
        {"Negotiate only", true, false, true, EDGE_LOCAL_401, {"Negotiate", NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct edge_policy p = pol_both;
        struct edge_req_out r;
        struct edge *e = edge_new(&env);
        p.offer_negotiate = cases[i].negotiate;
        p.offer_basic = cases[i].basic;
        p.basic_realm = "r";
        assert_int_equal(req(e, &p, NULL, cases[i].tls, &r), 0);
        assert_int_equal(r.action, cases[i].action);
        for (size_t j = 0; j < 2; j++) {
            if (cases[i].www[j] == NULL) {
                assert_int_equal(r.nwww, j);
                break;
            }
            assert_true(j < r.nwww);
            assert_string_equal(r.www[j], cases[i].www[j]);
        }
        edge_req_clear(&r);
        edge_free(e);
    }
}

/* NTLM is never accepted at the edge: raw NTLM, and NTLMSSP under Negotiate, get the offers. */
static void
test_ntlm_refused(void **state)
{
    const char *authz[] = {"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==",
                           "Negotiate TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw=="};
    for (size_t i = 0; i < 2; i++) {
        struct edge_req_out r;
        struct edge *e = edge_new(&env);
        assert_int_equal(req(e, &pol_both, authz[i], true, &r), 0);
        assert_int_equal(r.action, EDGE_LOCAL_401);
        assert_int_equal(r.nwww, 2);
        assert_string_equal(r.www[0], "Negotiate");
        assert_string_equal(r.www[1], "Basic realm=\"mail.example\"");
        assert_true(r.trace_done);
        assert_string_equal(edge_trace(e)->scheme, "NTLM");
        assert_string_equal(edge_trace(e)->verdict, "refused");
        edge_req_clear(&r);
        edge_free(e);
    }
    assert_int_equal(F.naccept, 0); /* the acceptor never saw them */
}

static void
test_negotiate_s4u2proxy(void **state)
{
    struct edge_req_out r;
    struct edge_resp_out o;
    struct edge *e = edge_new(&env);
    char line[1024];

    negotiate_login(e, "alice@LAB.TEST", false);
    const struct edge_trace *t = edge_trace(e);
    assert_string_equal(t->client, "alice@LAB.TEST");
    assert_string_equal(t->mech, "spnego/krb5");
    assert_int_equal(t->path, EDGE_PATH_S4U2PROXY);
    assert_string_equal(t->backend_as, "alice@LAB.TEST");
    assert_int_equal(t->backend_status, 200);
    assert_string_equal(t->backend_mutual, "ok");
    assert_string_equal(F.init_target, "HTTP@backend.lab.test");
    edge_trace_format(e, line, sizeof(line));
    assert_non_null(strstr(line, "scheme=Negotiate mech=spnego/krb5 user=\"alice@LAB.TEST\" "
                                 "path=S4U2Proxy"));
    assert_non_null(strstr(line, "backend_status=200 mutual=ok verdict=ok"));

    /* the next request on the connection: no Authorization either way */
    assert_int_equal(req(e, &pol_both, NULL, true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_false(r.fresh_backend);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD);
    assert_null(r.authorization);
    edge_req_clear(&r);
    assert_int_equal(resp(e, 200, NULL, &o), 0);
    assert_int_equal(o.action, EDGE_RESP_PASS);
    assert_null(o.client_www); /* the mutual-auth token went out once */
    edge_resp_clear(&o);
    assert_int_equal(F.init_news, 1);

    /* a new backend connection: a new handshake with the same credential */
    edge_backend_lost(e);
    script_init(AUTHGSS_CONTINUE, "AP-REQ-2", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &pol_both, NULL, true, &r), 0);
    edge_req_clear(&r);
    uint8_t hash[32] = {1};
    assert_int_equal(edge_backend_request(e, &pol_both, hash, sizeof(hash), &r), 0);
    assert_string_equal(r.authorization, cred_of("Negotiate", "AP-REQ-2"));
    assert_true(F.init_cb); /* the backend's certificate hash went to the initiator */
    edge_req_clear(&r);
    assert_int_equal(resp(e, 200, NULL, &o), 0); /* no AP-REP: accepted, mutual "none" */
    assert_string_equal(edge_trace(e)->backend_mutual, "none");
    edge_resp_clear(&o);
    edge_free(e);
}

static void
test_negotiate_continue_and_fail(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);

    /* a SPNEGO leg that needs another token */
    script_accept(AUTHGSS_CONTINUE, "neg-token-resp", NULL);
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60init"), true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    assert_int_equal(r.nwww, 1);
    assert_string_equal(r.www[0], cred_of("Negotiate", "neg-token-resp"));
    assert_false(r.trace_done);
    edge_req_clear(&r);
    assert_int_equal(F.live_accept, 1);

    /* the second leg fails: fresh offers, the context is gone, the trace says why */
    F.accept[F.naccept++] = (struct fake_step){AUTHGSS_FAIL, NULL, NULL, AUTHGSS_WHY_CLOCK_SKEW};
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\xa1resp"), true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    assert_int_equal(r.nwww, 2);
    assert_true(r.trace_done);
    assert_int_equal(edge_trace(e)->why, AUTHGSS_WHY_CLOCK_SKEW);
    assert_non_null(strstr(edge_trace(e)->error, "clock skew"));
    assert_int_equal(F.live_accept, 0);
    edge_req_clear(&r);

    /* a request without credentials abandons a handshake in progress */
    script_accept(AUTHGSS_CONTINUE, "again", NULL);
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60init"), true, &r), 0);
    edge_req_clear(&r);
    assert_int_equal(req(e, &pol_both, NULL, true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    assert_int_equal(F.live_accept, 0);
    edge_req_clear(&r);
    edge_free(e);
}

static void
test_not_forwardable(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    script_accept(AUTHGSS_DONE, NULL, "alice@LAB.TEST");
    F.take_why = AUTHGSS_WHY_NOT_FORWARDABLE;
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_403);
    assert_int_equal(r.status, 403);
    assert_true(r.trace_done);
    assert_non_null(strstr(edge_trace(e)->error, "evidence ticket not forwardable"));
    edge_req_clear(&r);
    /* nothing authenticated stays behind */
    assert_int_equal(req(e, &pol_both, NULL, true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    edge_req_clear(&r);
    edge_free(e);
}

static void
test_delegation_refused(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    script_accept(AUTHGSS_DONE, NULL, "alice@LAB.TEST");
    script_init(AUTHGSS_FAIL, NULL, AUTHGSS_WHY_DELEGATION_REFUSED);
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_403);
    assert_null(r.authorization);
    assert_true(r.trace_done);
    assert_int_equal(edge_trace(e)->why, AUTHGSS_WHY_DELEGATION_REFUSED);
    assert_non_null(strstr(edge_trace(e)->error, "S4U2Proxy refused"));
    assert_int_equal(F.live_init, 0);
    edge_req_clear(&r);
    edge_free(e);
}

static void
test_backend_refuses(void **state)
{
    struct edge_req_out r;
    struct edge_resp_out o;
    struct edge *e = edge_new(&env);
    script_accept(AUTHGSS_DONE, NULL, "alice@LAB.TEST");
    script_init(AUTHGSS_CONTINUE, "AP-REQ", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    edge_req_clear(&r);
    /* the backend's 401 never reaches the client (it would make it loop): 502 */
    assert_int_equal(resp(e, 401, "Negotiate", &o), 0);
    assert_int_equal(o.action, EDGE_RESP_LOCAL);
    assert_int_equal(o.status, 502);
    assert_true(o.trace_done);
    assert_int_equal(edge_trace(e)->backend_status, 401);
    edge_resp_clear(&o);
    edge_backend_lost(e);
    edge_free(e);
}

static void
test_basic_plain_refused(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    assert_int_equal(req(e, &pol_both, cred_of("Basic", "alice:Passw0rd!"), false, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_403);
    assert_int_equal(F.verify_calls, 0);
    edge_req_clear(&r);
    edge_free(e);
}

static void
test_basic_constrained(void **state)
{
    struct edge_req_out r;
    struct edge_resp_out o;
    struct edge *e = edge_new(&env);
    char line[1024];

    script_init(AUTHGSS_CONTINUE, "AP-REQ-alice", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &pol_both, cred_of("Basic", "LAB\\alice:Passw0rd!"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    edge_req_clear(&r);
    assert_string_equal(F.verify_user, "alice@LAB.TEST");
    assert_int_equal(F.impersonate_calls, 1);
    assert_string_equal(F.last_cred_user, "alice@LAB.TEST");
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD);
    assert_string_equal(r.authorization, cred_of("Negotiate", "AP-REQ-alice"));
    edge_req_clear(&r);
    assert_int_equal(resp(e, 200, NULL, &o), 0);
    assert_null(o.client_www);
    edge_resp_clear(&o);
    assert_int_equal(edge_trace(e)->path, EDGE_PATH_S4U2SELF_S4U2PROXY);
    edge_trace_format(e, line, sizeof(line));
    assert_null(strstr(line, "Passw0rd"));
    assert_non_null(strstr(line, "path=S4U2Self+S4U2Proxy"));

    /* the same Basic value again: no second KDC check, same backend connection */
    assert_int_equal(req(e, &pol_both, cred_of("Basic", "LAB\\alice:Passw0rd!"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_false(r.fresh_backend);
    edge_req_clear(&r);
    assert_int_equal(F.verify_calls, 1);

    /* another user on the same client connection: verified, and never served by the backend
     * connection that knows alice */
    script_init(AUTHGSS_CONTINUE, "AP-REQ-bob", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &pol_both, cred_of("Basic", "bob:Secret-2"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_true(r.fresh_backend);
    edge_req_clear(&r);
    assert_int_equal(F.verify_calls, 2);
    assert_int_equal(edge_backend_request(e, &pol_both, NULL, 0, &r), 0);
    assert_string_equal(r.authorization, cred_of("Negotiate", "AP-REQ-bob"));
    edge_req_clear(&r);
    assert_int_equal(F.live_cred, 1); /* alice's credential is gone */
    edge_free(e);
}

static void
test_basic_refusals(void **state)
{
    static const struct {
        enum authgss_why why;
        enum edge_action action;
    } cases[] = {
        {AUTHGSS_WHY_BAD_PASSWORD, EDGE_LOCAL_401},
        {AUTHGSS_WHY_UNKNOWN_USER, EDGE_LOCAL_401},
        {AUTHGSS_WHY_ACCOUNT_DISABLED, EDGE_LOCAL_401},
        {AUTHGSS_WHY_KDC_UNREACHABLE, EDGE_LOCAL_502},
        {AUTHGSS_WHY_KDC_NOT_VERIFIED, EDGE_LOCAL_502},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct edge_req_out r;
        struct edge *e = edge_new(&env);
        F.verify_why = cases[i].why;
        assert_int_equal(req(e, &pol_both, cred_of("Basic", "alice:nope"), true, &r), 0);
        assert_int_equal(r.action, cases[i].action);
        assert_true(r.trace_done);
        assert_int_equal(edge_trace(e)->why, cases[i].why);
        assert_string_equal(edge_trace(e)->verdict, "refused");
        edge_req_clear(&r);
        edge_free(e);
    }
    assert_int_equal(F.impersonate_calls, 0);

    /* S4U2Self refused: 403, no credential */
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    F.verify_why = AUTHGSS_WHY_NONE;
    F.cred_why = AUTHGSS_WHY_UNKNOWN_USER;
    assert_int_equal(req(e, &pol_both, cred_of("Basic", "alice:pw"), true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_403);
    edge_req_clear(&r);
    edge_free(e);
}

static void
test_malformed(void **state)
{
    const char *bad[] = {"Negotiate !!!!", "Basic bm9jb2xvbg==" /* "nocolon" */,
                         "Basic OnB3" /* ":pw" */, "Basic", "Negotiate a b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct edge_req_out r;
        struct edge *e = edge_new(&env);
        assert_int_equal(req(e, &pol_both, bad[i], true, &r), 0);
        assert_true(r.action == EDGE_LOCAL_400 || r.action == EDGE_LOCAL_401);
        edge_req_clear(&r);
        edge_free(e);
    }
    assert_int_equal(F.verify_calls, 0);
    assert_int_equal(F.naccept, 0);
}

static void
test_password_ntlm(void **state)
{
    struct edge_policy p = pol_both;
    struct edge_req_out r;
    struct edge_resp_out o;
    struct edge *e = edge_new(&env);
    p.delegation = EDGE_DELEG_PASSWORD;
    p.password_mech = EDGE_PASSWORD_NTLM;

    script_init(AUTHGSS_CONTINUE, "NTLMSSP-negotiate", AUTHGSS_WHY_NONE);
    script_init(AUTHGSS_DONE, "NTLMSSP-authenticate", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &p, cred_of("Basic", "alice@LAB.TEST:Passw0rd!"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &p, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD_NTLM_NEGOTIATE);
    assert_string_equal(r.authorization, cred_of("NTLM", "NTLMSSP-negotiate"));
    assert_string_equal(F.last_cred_user, "LAB\\alice");
    edge_req_clear(&r);
    /* the backend's challenge: resend with the AUTHENTICATE; the 401 is not delivered */
    assert_int_equal(resp(e, 401,
                          "NTLM "
                          "TlRMTVNTUAACAAAA",
                          &o),
                     0);
    assert_int_equal(o.action, EDGE_RESP_RESEND);
    assert_string_equal(o.authorization, cred_of("NTLM", "NTLMSSP-authenticate"));
    edge_resp_clear(&o);
    assert_int_equal(resp(e, 200, NULL, &o), 0);
    assert_int_equal(o.action, EDGE_RESP_PASS);
    assert_true(o.trace_done);
    edge_resp_clear(&o);
    assert_int_equal(edge_trace(e)->path, EDGE_PATH_PASSWORD_NTLM);
    assert_string_equal(edge_trace(e)->backend_mutual, "n/a");
    assert_int_equal(F.live_cred, 0); /* the NTLM credential served one handshake */

    /* a new backend connection gets a credential of its own */
    edge_backend_lost(e);
    script_init(AUTHGSS_CONTINUE, "NTLMSSP-negotiate-2", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &p, NULL, true, &r), 0);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e, &p, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD_NTLM_NEGOTIATE);
    edge_req_clear(&r);
    assert_int_equal(F.pw_ntlm_calls, 2);
    /* a backend that does not challenge: 502, handshake state gone */
    assert_int_equal(resp(e, 200, NULL, &o), 0);
    assert_int_equal(o.action, EDGE_RESP_LOCAL);
    edge_resp_clear(&o);
    /* edge_free zeroes the stored password before freeing it (checked by __wrap_free) */
    assert_true(F.ntracked > 0);
    edge_free(e);
}

static void
test_password_krb5(void **state)
{
    struct edge_policy p = pol_both;
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    p.delegation = EDGE_DELEG_PASSWORD;
    p.password_mech = EDGE_PASSWORD_KERBEROS;
    script_init(AUTHGSS_CONTINUE, "AP-REQ", AUTHGSS_WHY_NONE);
    assert_int_equal(req(e, &p, cred_of("Basic", "alice:Passw0rd!"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    edge_req_clear(&r);
    assert_int_equal(F.pw_krb5_calls, 1);
    assert_int_equal(F.impersonate_calls, 0);
    assert_int_equal(edge_backend_request(e, &p, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_FORWARD);
    edge_req_clear(&r);
    assert_int_equal(edge_trace(e)->path, EDGE_PATH_PASSWORD_KERBEROS);
    edge_free(e);
}

/* Two client connections: each backend handshake uses its own connection's credential, and a
 * connection closed takes everything with it; a new connection starts with nothing. */
static void
test_lifetime(void **state)
{
    struct edge_req_out r;
    struct edge *e1 = edge_new(&env), *e2 = edge_new(&env), *e3;

    F.conn = 1;
    negotiate_login(e1, "alice@LAB.TEST", false);
    assert_int_equal(F.init_cred_conn, 1);
    F.conn = 2;
    negotiate_login(e2, "bob@LAB.TEST", false);
    assert_int_equal(F.init_cred_conn, 2);
    assert_int_equal(F.live_cred, 2);
    F.conn = 1;
    edge_free(e1);
    assert_int_equal(F.live_cred, 1);

    F.conn = 3;
    e3 = edge_new(&env);
    assert_int_equal(req(e3, &pol_both, NULL, true, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_401); /* nobody: nothing carried over */
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e3, &pol_both, NULL, 0, &r), 0);
    assert_int_equal(r.action, EDGE_LOCAL_403);
    edge_req_clear(&r);
    edge_free(e3);

    /* a second Negotiate login on e2: same user keeps the backend connection, another not */
    F.conn = 2;
    script_accept(AUTHGSS_DONE, NULL, "bob@LAB.TEST");
    assert_int_equal(req(e2, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_false(r.fresh_backend);
    edge_req_clear(&r);
    assert_int_equal(edge_backend_request(e2, &pol_both, NULL, 0, &r), 0);
    assert_null(r.authorization);
    edge_req_clear(&r);
    script_accept(AUTHGSS_DONE, NULL, "carol@LAB.TEST");
    assert_int_equal(req(e2, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_true(r.fresh_backend);
    edge_req_clear(&r);
    edge_free(e2);
}

/* The backend connection is matched on the exact principal, not on its logged form; a refused
 * NTLM attempt does not unseat the connection's user. */
static void
test_identity(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    char line[1024];

    negotiate_login(e, "a\"b@LAB.TEST", false);
    edge_trace_format(e, line, sizeof(line));
    assert_non_null(strstr(line, "user=\"a?b@LAB.TEST\""));

    assert_int_equal(req(e, &pol_both,
                         "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", true, &r),
                     0);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    edge_req_clear(&r);
    assert_int_equal(req(e, &pol_both, NULL, true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_false(r.fresh_backend);
    edge_req_clear(&r);

    /* "a?b" logs like "a\"b" but is someone else */
    script_accept(AUTHGSS_DONE, NULL, "a?b@LAB.TEST");
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_int_equal(r.action, EDGE_PROCEED);
    assert_true(r.fresh_backend);
    edge_req_clear(&r);
    edge_free(e);
}

/* The certificate the client saw reaches the acceptor as channel bindings; a mismatch (the
 * acceptor's GSS_S_BAD_BINDINGS) is a refusal with fresh offers. */
static void
test_client_bindings(void **state)
{
    struct edge_req_out r;
    struct edge *e = edge_new(&env);
    uint8_t hash[32];
    memset(hash, 0xab, sizeof(hash));

    edge_set_client_cert(e, hash, sizeof(hash));
    F.accept[F.naccept++] = (struct fake_step){AUTHGSS_FAIL, NULL, NULL, AUTHGSS_WHY_BAD_BINDINGS};
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), true, &r), 0);
    assert_int_equal(F.accept_cb_len, 32);
    assert_int_equal(F.accept_cb0, 0xab);
    assert_int_equal(r.action, EDGE_LOCAL_401);
    assert_int_equal(edge_trace(e)->why, AUTHGSS_WHY_BAD_BINDINGS);
    edge_req_clear(&r);
    edge_free(e);

    /* without a certificate (plain connection): no bindings */
    e = edge_new(&env);
    script_accept(AUTHGSS_DONE, NULL, "alice@LAB.TEST");
    assert_int_equal(req(e, &pol_both, cred_of("Negotiate", "\x60t"), false, &r), 0);
    assert_int_equal(F.accept_cb_len, 0);
    edge_req_clear(&r);
    edge_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ntlm_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiate_s4u2proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negotiate_continue_and_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_forwardable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delegation_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backend_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_plain_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_constrained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_basic_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_ntlm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_krb5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifetime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_bindings, setup, teardown),
    };
    return cmocka_run_group_tests_name("auth_edge", tests, NULL, NULL);
}
