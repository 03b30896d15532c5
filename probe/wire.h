/*
 * exshim-probe: the parsers of what a server sends.
 * Pure code over (pointer, length): no I/O, no allocation, every read bounded by its length.
 * These are the parts a hostile server reaches, so each has a fuzz target
 * (tests/fuzz/fuzz_probe_*.c).
 *
 *   RTS PDUs (MS-RPCH 2.2.3): the 16-byte common header, then for RTS (ptype 0x14) the flags
 *   and command count at 16..19 and the commands from 20:
 *
 *     off  size  field
 *     0    1     rpc_vers (5)          4  4  packed_drep (0x10 = little endian)
 *     1    1     rpc_vers_minor (0)    8  2  frag_length (whole PDU)
 *     2    1     ptype (0x14 = RTS)   10  2  auth_length
 *     3    1     pfc_flags (3)        12  4  call_id
 *    16    2     RTS flags            18  2  number of commands
 *
 *   MAPI/HTTP bodies (MS-OXCMAPIHTTP 2.2.7): chunked; the payload is meta-tag lines
 *   (PROCESSING, PENDING, DONE), after DONE the additional headers (X-ResponseCode,
 *   X-ElapsedTime, ...), an empty line, then the binary response.
 *
 *   401 challenge sets: every WWW-Authenticate value of a response through auth/token.h.
 *
 *   Certificates: DER through OpenSSL, reduced to the names and dates the probe reports.
 */
#ifndef PROBE_WIRE_H
#define PROBE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/token.h"

enum pwire_result {
    PWIRE_INCOMPLETE = -1, /* need more bytes */
    PWIRE_ERROR = -2,      /* malformed */
};

/* ---- RTS ---------------------------------------------------------------------------------- */

#define PWIRE_PTYPE_RTS 0x14
#define PWIRE_RTS_FLAG_PING 0x0001
#define PWIRE_RTS_FLAG_ECHO 0x0040
#define PWIRE_PDU_MAX 65535
#define PWIRE_RTS_MAX_CMDS 16 /* more in one PDU is refused */

enum pwire_rts_kind {
    PWIRE_PDU_NOT_RTS = 0, /* a DCE/RPC PDU that is not RTS (bind ack, response, ...) */
    PWIRE_RTS_CONN_A3,     /* OUT proxy -> client: ConnectionTimeout (1 command) */
    PWIRE_RTS_CONN_C2,     /* server -> client: Version, ReceiveWindowSize, ConnectionTimeout */
    PWIRE_RTS_PING,        /* flags PING, no commands */
    PWIRE_RTS_ECHO,        /* flags ECHO */
    PWIRE_RTS_OTHER,       /* any other well-formed RTS PDU (flow control, recycling) */
};

struct pwire_pdu {
    uint8_t ptype;
    uint16_t frag_len;
    uint16_t rts_flags;
    uint16_t ncmds;
    enum pwire_rts_kind kind;
    uint32_t conn_timeout_ms; /* A3 and C2: the ConnectionTimeout value; else 0 */
    uint32_t version;         /* C2: the Version value */
};

/*
 * Parses the PDU at p[0..len). Returns frag_length (> 0) when the whole PDU is there and
 * well formed, PWIRE_INCOMPLETE when more bytes are needed, PWIRE_ERROR when it is not a
 * DCE/RPC v5 PDU or an RTS command overruns the PDU. Borrows p; fills *out on success only.
 */
int pwire_pdu_parse(const uint8_t *p, size_t len, struct pwire_pdu *out);

/* The PDUs the probe sends are built by bench/load/bench_rts.h, shared with exshim-bench. */

/* ---- chunked bodies ---------------------------------------------------------------------- */

enum pwire_chunk_state {
    PWIRE_CH_SIZE,  /* reading hex digits */
    PWIRE_CH_EXT,   /* chunk extension up to CR */
    PWIRE_CH_LF,    /* expecting LF after the size line */
    PWIRE_CH_DATA,  /* payload */
    PWIRE_CH_DCR,   /* CR after payload */
    PWIRE_CH_DLF,   /* LF after payload */
    PWIRE_CH_TRAIL, /* trailer lines after the last chunk */
    PWIRE_CH_DONE,  /* the last chunk and its empty line were read */
    PWIRE_CH_BAD,   /* framing error: stays here */
};

struct pwire_chunked {
    enum pwire_chunk_state st;
    uint64_t size;        /* current chunk: bytes left */
    unsigned digits;      /* hex digits read in this size line */
    bool last;            /* the size line was 0 */
    unsigned trail_len;   /* bytes on the current trailer line */
    unsigned trail_lines; /* trailer lines seen */
    bool trail_cr;        /* a CR ended the current trailer line; LF must follow */
};

/*
 * Decodes in[0..len) in place semantics: payload bytes are copied to out (capacity cap) and
 * their count stored in *out_len; returns the number of input bytes consumed (all of them
 * unless out filled up or the body ended), or PWIRE_ERROR on a framing error (bare LF, bad
 * hex, chunk size over 2^31, trailers over 8 KiB). Borrows everything.
 */
long pwire_chunked_feed(struct pwire_chunked *c, const uint8_t *in, size_t len, uint8_t *out,
                        size_t cap, size_t *out_len);

/* ---- MAPI/HTTP meta-tags ----------------------------------------------------------------- */

#define PWIRE_MAPI_LINE_MAX 256

struct pwire_mapi {
    unsigned processing, pending;
    bool done;         /* DONE seen */
    bool headers_end;  /* the empty line after the additional headers was seen */
    bool bad;          /* a line too long, or an unknown meta-tag before DONE */
    int response_code; /* X-ResponseCode after DONE; -1 until seen */
    char line[PWIRE_MAPI_LINE_MAX];
    size_t line_len;
    uint64_t body_bytes; /* binary bytes after the empty line */
};

void pwire_mapi_init(struct pwire_mapi *m);
/* Feeds de-chunked payload. Never fails; sets m->bad on malformed input. Borrows p. */
void pwire_mapi_feed(struct pwire_mapi *m, const uint8_t *p, size_t len);

/* ---- 401 challenge sets ------------------------------------------------------------------ */

#define PWIRE_MAX_OFFERS 8

struct pwire_offers {
    enum authtok_scheme scheme[PWIRE_MAX_OFFERS]; /* in the order received */
    size_t n;
    bool malformed; /* some WWW-Authenticate value did not parse (the rest is kept) */
    bool truncated; /* more than PWIRE_MAX_OFFERS challenges */
};

/* Adds the challenges of one WWW-Authenticate value v[0..len) to *o. Borrows v. */
void pwire_offers_add(struct pwire_offers *o, const char *v, size_t len);
/* Index of s in o, or -1. */
int pwire_offers_find(const struct pwire_offers *o, enum authtok_scheme s);
/* "Negotiate, NTLM" into buf (always terminated); "none" when empty. */
void pwire_offers_text(const struct pwire_offers *o, char *buf, size_t cap);

/* ---- certificates ------------------------------------------------------------------------ */

#define PWIRE_CERT_MAX_SANS 16
#define PWIRE_NAME_MAX 128

struct pwire_cert {
    char subject_cn[PWIRE_NAME_MAX]; /* "" when none */
    char issuer_cn[PWIRE_NAME_MAX];
    char san[PWIRE_CERT_MAX_SANS][PWIRE_NAME_MAX]; /* DNS names, in order */
    size_t nsan;
    bool self_issued; /* subject == issuer */
    bool expired, not_yet_valid;
    char not_after[32]; /* "YYYY-MM-DD" */
};

/* Reads a DER certificate. Returns 0 or -1 (not a certificate). Borrows der. */
int pwire_cert_parse(const uint8_t *der, size_t len, struct pwire_cert *out);

/*
 * True when host matches the certificate: a SAN DNS name (a "*." wildcard covering exactly one
 * label), or the subject CN when there are no SANs. Case-insensitive.
 */
bool pwire_cert_matches(const struct pwire_cert *c, const char *host);

/*
 * Outlook Anywhere's certificate principal name check: "msstd:NAME" must equal the subject
 * CN (older Outlook) or one of the SAN names; returns true when it does. name may start
 * with "msstd:".
 */
bool pwire_cert_msstd(const struct pwire_cert *c, const char *name);

#endif
