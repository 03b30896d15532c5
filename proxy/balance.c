/*
 * proxy/balance.c: the round-robin program of proxy/balance.h, loaded with the bpf(2) system
 * call (no libbpf: the program is ten instructions).
 *
 * The kernel runs a reuseport group's program on each SYN and uses its return value as an
 * index into the group's sockets; a value past the last one makes it fall back to its hash.
 * The program keeps one 32-bit counter in an array map and returns (counter++ mod N), the
 * increment atomic because the two cores may take SYNs at once. Indices follow the order in
 * which the sockets joined the group, which for exshim's slots is the order they were opened;
 * taking every index in turn keeps the spread even whatever that order is, as long as each
 * worker owns the same number of slots. The map and program live as long as the group holds
 * them: the descriptors are closed here once attached.
 */
#include "proxy/balance.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

static int
sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

#define INSN(op, dst, src, o, i)                                                                   \
    ((struct bpf_insn){.code = (op), .dst_reg = (dst), .src_reg = (src), .off = (o), .imm = (i)})

int
balance_attach(int fd, unsigned nsocks, char *err, size_t errlen)
{
    if (nsocks == 0) {
        snprintf(err, errlen, "no sockets to spread over");
        return -1;
    }
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    int map = sys_bpf(BPF_MAP_CREATE, &a);
    if (map < 0) {
        snprintf(err, errlen, "bpf(BPF_MAP_CREATE): %s", strerror(errno));
        return -1;
    }
    const int n = (int)nsocks;
    const struct bpf_insn prog[] = {
        INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0), /* key = 0 on the stack */
        INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
        INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4), /* r2 = &key */
        INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
        INSN(0, 0, 0, 0, 0), /* upper half of the map */
        INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
        INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 5, 0), /* no counter: to the hash */
        INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, 1),
        INSN(BPF_STX | BPF_ATOMIC | BPF_W, BPF_REG_0, BPF_REG_1, 0, BPF_ADD | BPF_FETCH),
        INSN(BPF_ALU | BPF_MOD | BPF_K, BPF_REG_1, 0, 0, n), /* old value mod N */
        INSN(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_0, BPF_REG_1, 0, 0),
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
        INSN(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, n), /* past the last socket */
        INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
    };
    char log[1024] = "";
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = sizeof(prog) / sizeof(prog[0]);
    a.license = (uint64_t)(uintptr_t) "GPL";
    a.log_buf = (uint64_t)(uintptr_t)log;
    a.log_size = sizeof(log);
    a.log_level = 1;
    int pfd = sys_bpf(BPF_PROG_LOAD, &a);
    int e = errno;
    close(map); /* the program holds the map from here on */
    if (pfd < 0) {
        /* the verifier's last line says why, when it is the verifier that refused */
        char *last = strrchr(log, '\n');
        while (last != NULL && last > log && last[1] == '\0') {
            *last = '\0';
            last = strrchr(log, '\n');
        }
        snprintf(err, errlen, "bpf(BPF_PROG_LOAD): %s%s%s", strerror(e), log[0] ? ": " : "",
                 last != NULL ? last + 1 : log);
        return -1;
    }
    int rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &pfd, sizeof(pfd));
    e = errno;
    close(pfd);
    if (rc != 0) {
        snprintf(err, errlen, "setsockopt(SO_ATTACH_REUSEPORT_EBPF): %s", strerror(e));
        return -1;
    }
    return 0;
}

void
balance_detach(int fd)
{
    int zero = 0;
    /* ENOENT: nothing was attached; either way the hash is in force afterwards */
    (void)setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &zero, sizeof(zero));
}
