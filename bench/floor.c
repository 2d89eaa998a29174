/* The floor of a plain HTTP check: a bare epoll loop in C, no Python, no asyncio.
 *
 *   floor ADDRESS_FILE PORT PATH CHECKS IN_FLIGHT
 *
 * Each check is what healthd's does: a fresh non-blocking TCP socket, SO_LINGER 0 (close sends
 * an RST), connect, send "GET PATH" with Connection: close, one read, "200" and "ok" looked for
 * in the reply, close. IN_FLIGHT checks run at once over the addresses of ADDRESS_FILE (one
 * dotted IPv4 address a line), round robin, until CHECKS are done. Prints one line:
 *   checks ok failed user_us sys_us wall_s
 * Built and run by bench/hotpath.py (gcc at bench time); not part of healthd.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct slot {
    int fd;
    int sent; /* the request went out */
};

static struct sockaddr_in *addrs;
static int naddrs, next_addr;
static char request[512];
static int request_len;
static long started, done, ok, failed, total;
static int ep;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start_one(struct slot *s) {
    static const struct linger rst = {1, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
    struct sockaddr_in *a = &addrs[next_addr++ % naddrs];
    s->fd = fd;
    s->sent = 0;
    if (connect(fd, (struct sockaddr *)a, sizeof *a) == 0 || errno == EINPROGRESS) {
        if (send(fd, request, request_len, MSG_NOSIGNAL) == request_len) s->sent = 1;
    }
    struct epoll_event ev = {.events = s->sent ? EPOLLIN : EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    started++;
}

static void finish(struct slot *s, int good) {
    close(s->fd); /* RST; the kernel drops it from the epoll set */
    done++;
    if (good) ok++; else failed++;
    if (started < total) start_one(s);
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: floor ADDRESS_FILE PORT PATH CHECKS IN_FLIGHT\n"); return 2; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 1; }
    int port = atoi(argv[2]);
    total = atol(argv[4]);
    int inflight = atoi(argv[5]);
    int cap = 1024;
    addrs = malloc(cap * sizeof *addrs);
    char line[64];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!*line) continue;
        if (naddrs == cap) addrs = realloc(addrs, (cap *= 2) * sizeof *addrs);
        memset(&addrs[naddrs], 0, sizeof *addrs);
        addrs[naddrs].sin_family = AF_INET;
        addrs[naddrs].sin_port = htons(port);
        if (inet_pton(AF_INET, line, &addrs[naddrs].sin_addr) != 1) { fprintf(stderr, "bad address %s\n", line); return 1; }
        naddrs++;
    }
    fclose(f);
    if (!naddrs) return 1;
    request_len = snprintf(request, sizeof request,
                           "GET %s HTTP/1.1\r\nHost: floor\r\nUser-Agent: floor\r\nAccept: */*\r\n"
                           "Connection: close\r\n\r\n", argv[3]);
    ep = epoll_create1(0);
    struct slot *slots = calloc(inflight, sizeof *slots);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now(), limit = t0 + 60;
    for (int i = 0; i < inflight && started < total; i++) start_one(&slots[i]);
    struct epoll_event evs[256];
    char buf[4096];
    while (done < total && now() < limit) {
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;
            if (!s->sent && (evs[i].events & EPOLLOUT)) {
                if (send(s->fd, request, request_len, MSG_NOSIGNAL) != request_len) { finish(s, 0); continue; }
                s->sent = 1;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
                epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
                continue;
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t got = recv(s->fd, buf, sizeof buf - 1, 0);
            if (got < 0 && errno == EAGAIN) continue;
            int good = 0;
            if (got > 0) {
                buf[got] = 0;
                char *body = strstr(buf, "\r\n\r\n");
                good = !strncmp(buf, "HTTP/1.1 200", 12) && body && strstr(body, "ok");
            }
            finish(s, good);
        }
    }
    double wall = now() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double user = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec);
    double sys = (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    printf("%ld %ld %ld %.0f %.0f %.3f\n", done, ok, failed, user, sys, wall);
    return 0;
}
