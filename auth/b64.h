/*
 * Strict base64 (RFC 4648 section 4, standard alphabet, '=' padding required) for the
 * token68 part of Authorization / WWW-Authenticate values.
 *
 * Pure code: no allocation, no I/O. Every call is bounded by the caller's capacity and by
 * AUTHB64_MAX_ENCODED.
 */
#ifndef AUTH_B64_H
#define AUTH_B64_H

#include <stddef.h>
#include <stdint.h>

/* Longest base64 text accepted (a Kerberos token with a large PAC: PROTOCOLS.md D.2). */
#define AUTHB64_MAX_ENCODED 65536
/* Largest decoded size that AUTHB64_MAX_ENCODED can produce. */
#define AUTHB64_MAX_DECODED (AUTHB64_MAX_ENCODED / 4 * 3)

/* Upper bound of the decoded size of n characters of base64 (exact when unpadded). */
size_t authb64_decoded_cap(size_t n);

/* Length of the base64 text for n bytes, without the terminating NUL. */
size_t authb64_encoded_len(size_t n);

/*
 * Decodes in[0..inlen) into out (capacity outcap). Rejected (returns -1): an empty input,
 * inlen > AUTHB64_MAX_ENCODED, a length that is not a multiple of 4, a character outside the
 * alphabet, '=' anywhere but the last one or two positions, non-zero bits under the padding,
 * and output that does not fit. On success returns 0 and stores the decoded length.
 * Borrows in and out; *outlen_out is written only on success.
 */
int authb64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen_out);

/*
 * Encodes in[0..n) into out followed by a NUL; outcap must be at least
 * authb64_encoded_len(n) + 1. Returns 0, or -1 when it does not fit or n is too large.
 * Borrows both; *outlen_out (without the NUL) is written only on success.
 */
int authb64_encode(const uint8_t *in, size_t n, char *out, size_t outcap, size_t *outlen_out);

#endif
