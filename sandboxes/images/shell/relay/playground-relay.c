/*
 * playground-relay: an instance's terminal, served to the web tier.
 *
 *   playground-relay COMMAND [ARG...]     run COMMAND on a new pseudo-terminal
 *                                         and serve that terminal over TCP
 *   playground-relay --connect [L|R|O]    a client on the instance itself:
 *                                         stdin/stdout <-> the local server
 *
 * Why: the engine's attach path (containerd-shim -> FIFO -> dockerd -> HTTP)
 * carries about 16 MB/s of terminal output on the lab hosts, while a
 * pseudo-terminal itself carries 40 MB/s and more. The web tier reads this
 * relay on the instance's address instead (sandboxes/docker.py), with the
 * engine only for everything else.
 *
 * The server is the container's main process (under tini). Without
 * PLAYGROUND_RELAY_TOKEN in its environment it simply becomes COMMAND, so the
 * image runs as before under a plain `docker run -it`. With it:
 *
 * - COMMAND runs as a session leader on a new pseudo-terminal; the relay ends
 *   with COMMAND's status when the terminal closes (so the instance stops).
 * - It listens on 0.0.0.0:PLAYGROUND_RELAY_PORT (default 4622). A client
 *   sends one line, "<token> <mode>\n", and then raw input bytes; it
 *   receives raw output. Modes: L live output; R the recent output kept
 *   (PLAYGROUND_RELAY_KEEP bytes, default 256 KiB), then live; O the recent
 *   output, then the relay closes the connection; P the instance's socket
 *   tables (/proc/net/tcp and tcp6 of its network namespace, for the ports
 *   the learner's programs listen on), then it closes: no exec through the
 *   engine every few seconds per instance. A wrong token is closed at once. The token is scrubbed from the environment COMMAND inherits and
 *   from this process's /proc/PID/environ. A connection that has not sent
 *   its hello line within HELLO_MS is closed, so silent connections cannot
 *   hold the MAX_CLIENTS places and keep the web tier out.
 * - Size: the web tier resizes the container's TTY through the engine; that
 *   TTY is this process's stdin, so SIGWINCH arrives here and the size is
 *   copied onto COMMAND's terminal (which signals COMMAND in turn).
 * - Flow control: output is read from the terminal while at least one live
 *   client has at most HIGH_WATER bytes waiting to be sent, so the fastest
 *   client sets the pace and clients that all stop reading stop the program
 *   that writes (as a local terminal does); a client left more than
 *   MAX_PENDING behind the others is dropped, so a stuck one (a dead engine
 *   stream under `--connect`) never freezes the terminal for the rest. Input
 *   is read from clients only while the terminal takes it.
 * - SIGTERM/SIGHUP/SIGINT are passed on to COMMAND's process group.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PORT 4622
#define DEFAULT_KEEP (256 * 1024)
#define MAX_CLIENTS 16
#define CHUNK (64 * 1024)
#define BATCH (256 * 1024)
#define HIGH_WATER (256 * 1024)
#define MAX_PENDING (4 * 1024 * 1024) /* a client this far behind the fastest is dropped */
#define HELLO_MAX 256
#define HELLO_MS 5000 /* to send the hello line, from the connection's accept */
#define INPUT_HIGH (256 * 1024)

struct buffer {
    char *data;
    size_t len, cap;
};

struct client {
    int fd;
    int live;              /* hello accepted */
    int closing;           /* mode O: close once pending is sent */
    char hello[HELLO_MAX];
    size_t hello_len;
    long long hello_by;    /* monotonic ms: dropped if not live by then */
    struct buffer pending; /* output not yet sent */
};

static volatile sig_atomic_t got_winch, got_term, got_chld;
static char token[128];
static struct client clients[MAX_CLIENTS];
static int master = -1, listener = -1;
static pid_t child;
static int child_status = -1; /* once reaped */
static char *ring;
static size_t ring_cap, ring_len, ring_head; /* head: where the next byte goes */
static struct buffer input;                    /* typed, not yet taken by the terminal */

static void die(const char *what) {
    fprintf(stderr, "playground-relay: %s: %s\n", what, strerror(errno));
    exit(111);
}

static void on_signal(int sig) {
    if (sig == SIGWINCH) got_winch = 1;
    else if (sig == SIGCHLD) got_chld = 1;
    else got_term = sig;
}

static int append(struct buffer *b, const char *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return -1;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void consume(struct buffer *b, size_t n) {
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->len == 0 && b->cap > 4 * CHUNK) { /* give memory back after a burst */
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

static void keep(const char *data, size_t len) {
    if (!ring_cap) return;
    if (len >= ring_cap) {
        memcpy(ring, data + len - ring_cap, ring_cap);
        ring_head = 0;
        ring_len = ring_cap;
        return;
    }
    size_t first = ring_cap - ring_head < len ? ring_cap - ring_head : len;
    memcpy(ring + ring_head, data, first);
    memcpy(ring, data + first, len - first);
    ring_head = (ring_head + len) % ring_cap;
    ring_len = ring_len + len > ring_cap ? ring_cap : ring_len + len;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drop(struct client *c) {
    close(c->fd);
    free(c->pending.data);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

/* Send what can go now; keep the rest. -1 if the client is gone. */
static int flush_client(struct client *c) {
    while (c->pending.len) {
        ssize_t n = send(c->fd, c->pending.data, c->pending.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            consume(&c->pending, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        return -1;
    }
    return 0;
}

static int give(struct client *c, const char *data, size_t len) {
    if (c->pending.len == 0) {
        while (len) {
            ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                data += n;
                len -= (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) break;
            return -1;
        }
    }
    if (len && c->pending.len + len > MAX_PENDING) return -1; /* stuck: it must not hold the others up */
    return len ? append(&c->pending, data, len) : 0;
}

/* A whole (small, /proc) file to a client; a missing one gives nothing. */
static int give_file(struct client *c, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char data[CHUNK];
    ssize_t n;
    int result = 0;
    while ((n = read(fd, data, sizeof data)) > 0)
        if ((result = give(c, data, (size_t)n)) < 0) break;
    close(fd);
    return result;
}

static int tokens_match(const char *given, size_t len) {
    size_t want = strlen(token);
    unsigned char diff = (unsigned char)(len != want);
    for (size_t i = 0; i < want; i++) diff |= (unsigned char)(given[i < len ? i : 0] ^ token[i]);
    return diff == 0;
}

/* A complete hello line: check it and start the client. -1 to drop it. */
static int accept_hello(struct client *c, size_t line_len) {
    char *space = memchr(c->hello, ' ', line_len);
    if (!space || space + 3 != c->hello + line_len) return -1; /* "<token> <mode>\n" */
    if (!tokens_match(c->hello, (size_t)(space - c->hello))) return -1;
    char mode = space[1];
    if (mode != 'L' && mode != 'R' && mode != 'O' && mode != 'P') return -1;
    c->live = 1;
    if (mode == 'P') {
        if (give_file(c, "/proc/net/tcp") < 0 || give_file(c, "/proc/net/tcp6") < 0) return -1;
    } else if (mode != 'L' && ring_len) {
        size_t start = (ring_head + ring_cap - ring_len) % ring_cap;
        size_t first = ring_cap - start < ring_len ? ring_cap - start : ring_len;
        if (give(c, ring + start, first) < 0 || give(c, ring, ring_len - first) < 0) return -1;
    }
    if (mode == 'O' || mode == 'P') {
        c->closing = 1;
        shutdown(c->fd, SHUT_RD);
    }
    /* Input that came right behind the hello line. */
    size_t rest = c->hello_len - line_len;
    if (rest && !c->closing && append(&input, c->hello + line_len, rest) < 0) return -1;
    c->hello_len = 0;
    return 0;
}

static void read_client(struct client *c) {
    if (!c->live) {
        ssize_t n = recv(c->fd, c->hello + c->hello_len, HELLO_MAX - c->hello_len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return drop(c);
        if (n < 0) return;
        c->hello_len += (size_t)n;
        char *newline = memchr(c->hello, '\n', c->hello_len);
        if (!newline) {
            if (c->hello_len == HELLO_MAX) drop(c);
            return;
        }
        if (accept_hello(c, (size_t)(newline - c->hello) + 1) < 0 || (c->closing && !c->pending.len)) drop(c);
        return;
    }
    char data[CHUNK];
    ssize_t n = recv(c->fd, data, sizeof data, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        if (c->closing && n == 0) return; /* mode O: we shut reading down ourselves */
        return drop(c);
    }
    if (n > 0 && append(&input, data, (size_t)n) < 0) drop(c);
}

static void write_input(void) {
    while (input.len) {
        ssize_t n = write(master, input.data, input.len);
        if (n > 0) {
            consume(&input, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        input.len = 0; /* the terminal is closing: nothing takes input any more */
        return;
    }
}

static void copy_size(void) {
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) ioctl(master, TIOCSWINSZ, &ws);
}

static void fan_out(const char *data, size_t len) {
    keep(data, len);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &clients[i];
        if (c->fd >= 0 && c->live && !c->closing && give(c, data, len) < 0) drop(c);
    }
}

/* Output still in the terminal when COMMAND ended: pass it on, then leave. */
static void finish(void) {
    int status = 0;
    char data[CHUNK];
    ssize_t n;
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    while ((n = read(master, data, sizeof data)) > 0) fan_out(data, (size_t)n);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &clients[i];
        if (c->fd < 0) continue;
        int flags = fcntl(c->fd, F_GETFL);
        fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
        struct timeval limit = {.tv_sec = 2};
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        if (c->pending.len) send(c->fd, c->pending.data, c->pending.len, MSG_NOSIGNAL);
        close(c->fd);
    }
    if (child_status != -1) status = child_status;
    else
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
    if (WIFSIGNALED(status)) exit(128 + WTERMSIG(status));
    exit(WEXITSTATUS(status));
}

static void take_token(void) {
    char *value = getenv("PLAYGROUND_RELAY_TOKEN");
    if (!value) return;
    snprintf(token, sizeof token, "%s", value);
    /* The string lives in the block /proc/PID/environ shows: blank it there. */
    memset(value, 'x', strlen(value));
    unsetenv("PLAYGROUND_RELAY_TOKEN");
}

static int serve_port(void) {
    const char *text = getenv("PLAYGROUND_RELAY_PORT");
    int port = text ? atoi(text) : DEFAULT_PORT;
    unsetenv("PLAYGROUND_RELAY_PORT");
    return port > 0 && port < 65536 ? port : DEFAULT_PORT;
}

static size_t keep_size(void) {
    const char *text = getenv("PLAYGROUND_RELAY_KEEP");
    long size = text ? atol(text) : DEFAULT_KEEP;
    unsetenv("PLAYGROUND_RELAY_KEEP");
    return size >= 0 && size <= 16 * 1024 * 1024 ? (size_t)size : DEFAULT_KEEP;
}

static int server(char **command) {
    take_token();
    int port = serve_port();
    ring_cap = keep_size();
    if (!token[0]) { /* not under the playground: just be COMMAND */
        execvp(command[0], command);
        die(command[0]);
    }
    if (ring_cap && !(ring = malloc(ring_cap))) die("memory");

    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
    if (listen(listener, 8) < 0) die("listen");

    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_col || !ws.ws_row) {
        ws.ws_row = 24;
        ws.ws_col = 80;
    }
    sigset_t blocked, waiting;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGWINCH);
    sigaddset(&blocked, SIGCHLD);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGHUP);
    sigaddset(&blocked, SIGINT);
    sigprocmask(SIG_BLOCK, &blocked, &waiting);

    child = forkpty(&master, NULL, NULL, &ws);
    if (child < 0) die("forkpty");
    if (child == 0) {
        sigprocmask(SIG_SETMASK, &waiting, NULL);
        execvp(command[0], command);
        die(command[0]);
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    fcntl(master, F_SETFD, FD_CLOEXEC);

    struct sigaction action = {.sa_handler = on_signal};
    sigemptyset(&action.sa_mask);
    sigaction(SIGWINCH, &action, NULL);
    sigaction(SIGCHLD, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < MAX_CLIENTS; i++) clients[i].fd = -1;

    struct pollfd fds[2 + MAX_CLIENTS];
    for (;;) {
        if (got_winch) {
            got_winch = 0;
            copy_size();
        }
        if (got_term) {
            kill(-child, got_term);
            got_term = 0;
        }
        if (got_chld) {
            /* COMMAND ended; its orphans (dockerd, say) may hold the terminal
             * open, so the closed terminal alone would not tell. */
            got_chld = 0;
            int status;
            if (waitpid(child, &status, WNOHANG) == child) {
                child_status = status;
                finish();
            }
        }
        /* The fastest live client sets the pace: the terminal waits only
         * while every one of them is behind (a stuck one is dropped in give). */
        int live = 0, behind = 0;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || !c->live || c->closing) continue;
            live++;
            if (c->pending.len > HIGH_WATER) behind++;
        }
        int stalled = live > 0 && behind == live;

        fds[0] = (struct pollfd){.fd = master, .events = (short)((stalled ? 0 : POLLIN) | (input.len ? POLLOUT : 0))};
        fds[1] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            short events = 0;
            if (c->fd >= 0) {
                if (!c->closing && input.len < INPUT_HIGH) events |= POLLIN;
                if (c->pending.len) events |= POLLOUT;
            }
            fds[2 + i] = (struct pollfd){.fd = events ? c->fd : -1, .events = events};
        }
        /* Connections still owing their hello: drop the late, wake for the next. */
        long long now = now_ms(), wake = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd < 0 || c->live) continue;
            if (c->hello_by <= now) {
                drop(c);
                fds[2 + i].fd = -1;
            } else if (wake < 0 || c->hello_by < wake) {
                wake = c->hello_by;
            }
        }
        struct timespec until = {0, 0};
        if (wake >= 0) {
            until.tv_sec = (time_t)((wake - now) / 1000);
            until.tv_nsec = (long)((wake - now) % 1000) * 1000000L;
        }
        int ready = ppoll(fds, 2 + MAX_CLIENTS, wake >= 0 ? &until : NULL, &waiting);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[0].revents & POLLOUT) write_input();
        if (fds[0].revents & POLLIN) {
            /* Read what the terminal has (up to BATCH) before sending: fewer,
             * larger sends for a flood; a keystroke's echo goes at once. */
            static char data[BATCH];
            size_t got = 0;
            ssize_t n = 0;
            while (got + CHUNK <= sizeof data && (n = read(master, data + got, CHUNK)) > 0) got += (size_t)n;
            if (got) fan_out(data, got);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) finish();
        } else if (fds[0].revents & (POLLHUP | POLLERR)) {
            finish();
        }
        if (fds[1].revents & POLLIN) {
            int fd;
            while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
                    if (clients[i].fd < 0) slot = i;
                if (slot < 0) {
                    close(fd);
                    continue;
                }
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                clients[slot].fd = fd;
                clients[slot].hello_by = now_ms() + HELLO_MS;
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            short revents = fds[2 + i].revents;
            if (c->fd < 0 || !revents) continue;
            if (revents & POLLOUT && flush_client(c) < 0) {
                drop(c);
                continue;
            }
            if (c->closing && !c->pending.len) {
                drop(c);
                continue;
            }
            if (revents & (POLLIN | POLLHUP | POLLERR)) read_client(c);
        }
        if (input.len) write_input();
    }
    return 0;
}

/* --connect: for a caller that reaches the instance only through the engine
 * (`docker exec -t`): our stdin/stdout become a client of the local server. */
static int client(const char *mode) {
    take_token();
    int port = serve_port();
    if (!token[0]) {
        fprintf(stderr, "playground-relay: PLAYGROUND_RELAY_TOKEN is not set\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct termios raw;
    if (tcgetattr(STDIN_FILENO, &raw) == 0) {
        cfmakeraw(&raw);
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    char hello[HELLO_MAX];
    int len = snprintf(hello, sizeof hello, "%s %c\n", token, mode[0]);
    if (len < 0 || len >= (int)sizeof hello || send(fd, hello, (size_t)len, MSG_NOSIGNAL) != len) die("hello");
    signal(SIGPIPE, SIG_IGN);
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
    char data[CHUNK];
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (fds[1].revents) {
            ssize_t n = recv(fd, data, sizeof data, 0);
            if (n <= 0) return 0;
            for (ssize_t done = 0; done < n;) {
                ssize_t w = write(STDOUT_FILENO, data + done, (size_t)(n - done));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) return 1;
                done += w;
            }
        }
        if (fds[0].revents) {
            ssize_t n = read(STDIN_FILENO, data, sizeof data);
            if (n <= 0) {
                shutdown(fd, SHUT_WR);
                fds[0].fd = -1;
                continue;
            }
            if (send(fd, data, (size_t)n, MSG_NOSIGNAL) != n) return 1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--connect") == 0) return client(argc >= 3 ? argv[2] : "L");
    if (argc < 2) {
        fprintf(stderr, "usage: playground-relay COMMAND [ARG...] | --connect [L|R|O]\n");
        return 2;
    }
    return server(argv + 1);
}
