/*
 * proxy/balance.h: new connections of a listener handed to its SO_REUSEPORT sockets in turn.
 *
 * The kernel's default spreads connections over the sockets of a reuseport group by a hash of
 * the addresses and ports: with 64 clients and 2 workers one worker often gets 37 or 43 of
 * them, and it answers the whole box's tail latency. A small eBPF program attached to the
 * group instead picks socket (n++ mod N): each worker gets its share within one connection.
 */
#ifndef EXSHIM_BALANCE_H
#define EXSHIM_BALANCE_H

#include <stddef.h>

/* Attaches the round-robin program over nsocks sockets to the group fd belongs to (replacing
 * one attached before). Returns 0, or -1 with err (no eBPF, no permission: the kernel's hash
 * then stays in force). */
int balance_attach(int fd, unsigned nsocks, char *err, size_t errlen);

/* Back to the kernel's hash for the group of fd. */
void balance_detach(int fd);

#endif
