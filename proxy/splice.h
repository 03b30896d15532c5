/*
 * The pipes that splice(2) moves plain body bytes through (socket -> pipe -> socket), and the
 * worker's counts of them. A pipe costs two descriptors, so a worker holds at most
 * SPLICE_MAX_PIPES at once (next to max_connections sockets, under the 20000-descriptor
 * limit); past that, or when pipe2() fails (EMFILE, ENFILE), the body takes the copy path and
 * the refusal is counted. conn.c opens a pipe for the side that writes from it and closes it
 * when the body ends or the flow turns sparse: idle connections hold none.
 */
#ifndef PROXY_SPLICE_H
#define PROXY_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#define SPLICE_MAX_PIPES 256
/* Asked of F_SETPIPE_SZ; a pipe the kernel leaves below SPLICE_MIN_PIPE is not worth it. */
#define SPLICE_PIPE_SIZE (512 * 1024)
#define SPLICE_MIN_PIPE (64 * 1024)

struct splice_stats {
    uint64_t opened;    /* pipes opened */
    uint64_t no_fd;     /* pipe2() failed with EMFILE or ENFILE */
    uint64_t failed;    /* pipe2() failed otherwise, or the pipe stayed below SPLICE_MIN_PIPE */
    uint64_t capped;    /* refused at SPLICE_MAX_PIPES */
    uint64_t sparse;    /* closed mid-body because the flow had turned to small pieces */
    uint64_t bytes_in;  /* socket -> pipe */
    uint64_t bytes_out; /* pipe -> socket */
    unsigned open;      /* pipes open now */
};

/* Opens a non-blocking pipe, sized towards SPLICE_PIPE_SIZE (quietly less when the kernel
 * refuses). fds[0] reads, fds[1] writes; *cap is its size. 0, or -1 (counted, copy path). */
int splice_pipe_open(int fds[2], size_t *cap);

/* Closes a pipe from splice_pipe_open and sets both descriptors to -1. */
void splice_pipe_close(int fds[2]);

/* This worker's counts. */
struct splice_stats *splice_stats(void);

#endif
