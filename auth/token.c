/*
 * Authorization / WWW-Authenticate value parser. Every index is checked against len before
 * the byte is read; nothing is copied.
 */
#include "auth/token.h"

#include "auth/b64.h"

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return true;
    default:
        return false;
    }
}

/* token68 characters other than the trailing '='. */
static bool
is_t68char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static bool
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static size_t
skip_ows(const char *v, size_t len, size_t i)
{
    while (i < len && is_ows((unsigned char)v[i]))
        i++;
    return i;
}

static size_t
scan_token(const char *v, size_t len, size_t i)
{
    while (i < len && is_tchar((unsigned char)v[i]))
        i++;
    return i;
}

/* Scans a quoted-string starting at the opening quote v[i]; returns the index after the
 * closing quote, or 0 when it is unterminated or holds a forbidden byte. */
static size_t
scan_quoted(const char *v, size_t len, size_t i)
{
    i++;
    while (i < len) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (i + 1 >= len)
                return 0;
            c = (unsigned char)v[i + 1];
            if (c != '\t' && (c < 0x20 || c == 0x7f))
                return 0;
            i += 2;
            continue;
        }
        if (c != '\t' && (c < 0x20 || c == 0x7f))
            return 0;
        i++;
    }
    return 0;
}

/* True when v[i..] starts an auth-param ("token BWS ="). */
static bool
starts_param(const char *v, size_t len, size_t i)
{
    size_t t = scan_token(v, len, i);
    if (t == i)
        return false;
    t = skip_ows(v, len, t);
    return t < len && v[t] == '=';
}

/*
 * Parses the auth-param list starting at v[i]. In list mode a comma followed by something
 * that is not "token BWS =" ends the list (a new challenge starts there). Sets *end_out to the
 * end of the last value and *next_out to where the caller continues (a ',' or len).
 */
static int
parse_params(const char *v, size_t len, size_t i, bool list_mode, size_t *nparams_out,
             size_t *end_out, size_t *next_out, const char **why_out)
{
    size_t n = 0;
    size_t end = i;
    size_t e;

    for (;;) {
        size_t k = scan_token(v, len, i);
        if (k == i) {
            *why_out = "expected an auth-param name";
            return AUTHTOK_ERROR;
        }
        k = skip_ows(v, len, k);
        if (k >= len || v[k] != '=') {
            *why_out = "auth-param without '='";
            return AUTHTOK_ERROR;
        }
        k = skip_ows(v, len, k + 1);
        if (k < len && v[k] == '"') {
            size_t q = scan_quoted(v, len, k);
            if (q == 0) {
                *why_out = "bad quoted-string";
                return AUTHTOK_ERROR;
            }
            end = q;
        } else {
            size_t t = scan_token(v, len, k);
            if (t == k) {
                *why_out = "auth-param without a value";
                return AUTHTOK_ERROR;
            }
            end = t;
        }
        n++;
        e = skip_ows(v, len, end);
        if (e == len)
            break;
        if (v[e] != ',') {
            *why_out = "expected ',' after an auth-param";
            return AUTHTOK_ERROR;
        }
        /* Look past empty list elements for the next parameter. */
        k = e;
        while (k < len && (v[k] == ',' || is_ows((unsigned char)v[k])))
            k++;
        if (k == len) {
            e = len;
            break;
        }
        if (list_mode && !starts_param(v, len, k))
            break;
        i = k;
    }
    *nparams_out = n;
    *end_out = end;
    *next_out = e;
    return AUTHTOK_OK;
}

/*
 * Parses one challenge or credentials element at v[*pos] (a tchar). On success fills *c and
 * moves *pos to the ',' that ends it or to len.
 */
static int
parse_element(const char *v, size_t len, size_t *pos, bool list_mode, struct authtok_challenge *c,
              const char **why_out)
{
    size_t start = *pos;
    size_t i = scan_token(v, len, start);
    size_t j, k, m, e;
    struct authtok_challenge out = {0};

    if (i == start) {
        *why_out = "expected an auth-scheme";
        return AUTHTOK_ERROR;
    }
    out.name.p = v + start;
    out.name.len = i - start;
    out.scheme = authtok_scheme_classify(out.name.p, out.name.len);
    out.text = out.name;

    if (i < len && v[i] != ',' && !is_ows((unsigned char)v[i])) {
        *why_out = "bad character after the auth-scheme";
        return AUTHTOK_ERROR;
    }
    j = skip_ows(v, len, i);
    if (j == len || v[j] == ',') {
        *c = out;
        *pos = j;
        return AUTHTOK_OK;
    }

    /* token68: its characters, '=' padding, then the end of the element. */
    k = j;
    while (k < len && is_t68char((unsigned char)v[k]))
        k++;
    if (k > j) {
        m = k;
        while (m < len && v[m] == '=')
            m++;
        e = skip_ows(v, len, m);
        if (e == len || (list_mode && v[e] == ',')) {
            out.token68.p = v + j;
            out.token68.len = m - j;
            out.text.len = (size_t)(v + m - out.text.p);
            *c = out;
            *pos = e;
            return AUTHTOK_OK;
        }
        if (!list_mode && v[e] == ',') {
            *why_out = "data after the token68";
            return AUTHTOK_ERROR;
        }
    }

    if (parse_params(v, len, j, list_mode, &out.nparams, &m, &e, why_out) != AUTHTOK_OK)
        return AUTHTOK_ERROR;
    out.params.p = v + j;
    out.params.len = m - j;
    out.text.len = (size_t)(v + m - out.text.p);
    *c = out;
    *pos = e;
    return AUTHTOK_OK;
}

int
authtok_parse_challenges(const char *v, size_t len, struct authtok_challenge *list, size_t cap,
                         size_t *n_inout, const char **why_out)
{
    size_t n = *n_inout;
    size_t i = 0;
    size_t found = 0;

    for (;;) {
        while (i < len && (v[i] == ',' || is_ows((unsigned char)v[i])))
            i++;
        if (i == len)
            break;
        if (n >= cap) {
            *why_out = "too many challenges";
            return AUTHTOK_ERROR;
        }
        if (parse_element(v, len, &i, true, &list[n], why_out) != AUTHTOK_OK)
            return AUTHTOK_ERROR;
        n++;
        found++;
    }
    if (found == 0) {
        *why_out = "no challenge";
        return AUTHTOK_ERROR;
    }
    *n_inout = n;
    return AUTHTOK_OK;
}

int
authtok_parse_credentials(const char *v, size_t len, struct authtok_challenge *out,
                          const char **why_out)
{
    size_t i = skip_ows(v, len, 0);
    struct authtok_challenge c;

    if (i == len) {
        *why_out = "empty credentials";
        return AUTHTOK_ERROR;
    }
    if (parse_element(v, len, &i, false, &c, why_out) != AUTHTOK_OK)
        return AUTHTOK_ERROR;
    if (i != len) {
        *why_out = "data after the credentials";
        return AUTHTOK_ERROR;
    }
    *out = c;
    return AUTHTOK_OK;
}

/* Known scheme words, matched case-insensitively (RFC 9110 section 11.1). */
static const struct {
    const char *name;
    enum authtok_scheme scheme;
} scheme_table[] = {
    {"NTLM", AUTHTOK_SCHEME_NTLM},     {"Negotiate", AUTHTOK_SCHEME_NEGOTIATE},
    {"Basic", AUTHTOK_SCHEME_BASIC},   {"Digest", AUTHTOK_SCHEME_DIGEST},
    {"Bearer", AUTHTOK_SCHEME_BEARER}, {"Nego2", AUTHTOK_SCHEME_NEGO2},
};

static bool
eq_nocase(const char *a, size_t alen, const char *b)
{
    size_t i;
    for (i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if (y == '\0')
            return false;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return b[alen] == '\0';
}

enum authtok_scheme
authtok_scheme_classify(const char *name, size_t len)
{
    size_t i;
    for (i = 0; i < sizeof(scheme_table) / sizeof(scheme_table[0]); i++)
        if (eq_nocase(name, len, scheme_table[i].name))
            return scheme_table[i].scheme;
    return AUTHTOK_SCHEME_OTHER;
}

const char *
authtok_scheme_name(enum authtok_scheme s)
{
    size_t i;
    for (i = 0; i < sizeof(scheme_table) / sizeof(scheme_table[0]); i++)
        if (scheme_table[i].scheme == s)
            return scheme_table[i].name;
    return "other";
}

enum authtok_scheme
authtok_scheme_from_conf(enum conf_scheme s)
{
    switch (s) {
    case CONF_SCHEME_NTLM:
        return AUTHTOK_SCHEME_NTLM;
    case CONF_SCHEME_NEGOTIATE:
        return AUTHTOK_SCHEME_NEGOTIATE;
    case CONF_SCHEME_BASIC:
        return AUTHTOK_SCHEME_BASIC;
    case CONF_SCHEME_DIGEST:
        return AUTHTOK_SCHEME_DIGEST;
    case CONF_SCHEME_BEARER:
        return AUTHTOK_SCHEME_BEARER;
    }
    return AUTHTOK_SCHEME_OTHER;
}

int
authtok_decode(const struct authtok_challenge *c, uint8_t *out, size_t cap, size_t *len_out)
{
    if (c->token68.len == 0)
        return -1;
    return authb64_decode(c->token68.p, c->token68.len, out, cap, len_out);
}
