/*
 * A paced UDP sender for bench/ingest_udp.py.
 *
 *   udp_sender <port> <datagrams per second> <seconds> <packet file> [<sockets>]
 *
 * The packet file holds datagrams, each as a 4-byte little-endian length and its bytes;
 * they are sent round-robin to 127.0.0.1:<port> with sendmmsg, in batches, paced every
 * 200 microseconds against the clock so that the rate holds on average.  Prints
 * "<datagrams sent> <seconds taken>".  With <sockets> (default 1), each batch goes out of
 * the next of that many sender sockets (each its own source port), so that a port shared
 * with SO_REUSEPORT spreads them over its listeners.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s port rate seconds packet-file [sockets]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    double rate = atof(argv[2]), seconds = atof(argv[3]);
    FILE *file = fopen(argv[4], "rb");
    if (!file) { perror("packet file"); return 1; }
    size_t count = 0, room = 1024;
    struct iovec *packets = malloc(room * sizeof *packets);
    uint32_t length;
    while (fread(&length, 4, 1, file) == 1) {
        if (count == room) packets = realloc(packets, (room *= 2) * sizeof *packets);
        packets[count].iov_base = malloc(length);
        packets[count].iov_len = length;
        if (fread(packets[count].iov_base, 1, length, file) != length) { fprintf(stderr, "short file\n"); return 1; }
        count++;
    }
    if (!count) { fprintf(stderr, "no packets\n"); return 1; }
    int sockets = argc == 6 ? atoi(argv[5]) : 1;
    if (sockets < 1) sockets = 1;
    int *socks = malloc(sockets * sizeof *socks), which = 0;
    int buffer = 4 << 20;
    for (int i = 0; i < sockets; i++) {
        socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
        setsockopt(socks[i], SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    }
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    struct mmsghdr messages[BATCH];
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        messages[i].msg_hdr.msg_name = &to;
        messages[i].msg_hdr.msg_namelen = sizeof to;
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    long long sent = 0, total = (long long)(rate * seconds);
    size_t next = 0;
    double start = now(), elapsed;
    while (sent < total) {
        elapsed = now() - start;
        long long due = (long long)(elapsed * rate) + 1;
        if (due > total) due = total;
        while (sent < due) {
            int n = due - sent < BATCH ? (int)(due - sent) : BATCH;
            for (int i = 0; i < n; i++) {
                messages[i].msg_hdr.msg_iov = &packets[next];
                next = next + 1 == count ? 0 : next + 1;
            }
            int sock = socks[which];
            which = which + 1 == sockets ? 0 : which + 1;
            int done = sendmmsg(sock, messages, n, 0);
            if (done < 0) {
                if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) continue;
                perror("sendmmsg");
                return 1;
            }
            sent += done;
            next = (next + count - (n - done)) % count;  /* resend what was not taken */
        }
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    printf("%lld %.6f\n", sent, now() - start);
    return 0;
}
