/* gh-load.c: epoll load client for gatehoused — many idle/active keep-alive connections, slowloris dribblers and latency probes, loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Connection kinds:
 *  IDLE   one request, then an idle keep-alive connection; at the end of the
 *         run each sends one more request, which must be answered 200.
 *  ACTIVE back-to-back keep-alive requests for the whole run.
 *  SLOW   slowloris: the request line, then one header byte every
 *         --slow-interval-ms, never finishing the headers; reconnects when
 *         the server closes it (408 after header_timeout_ms).
 *  PROBE  a "normal client": a new connection per request, GET, read the
 *         response, close; each request's latency (connect to last byte) is
 *         recorded and reported as percentiles.
 * Errors: a failed connect, a non-200 status, an unexpected close on an
 * IDLE/ACTIVE/PROBE connection, a response slower than 10 s, or (with
 * --expect-length N) a response whose Content-Length is not N. Bodies are
 * read to their Content-Length and counted, not kept; extra bytes after a
 * response (nothing is pipelined) are a framing error.
 * --first-headers FILE: one header line per ACTIVE connection (the first
 * line to the first connection ...), sent in that connection's first
 * request only; later requests carry no extra header (persisted
 * authentication: "Authorization: Negotiate <token>" lines, each token
 * used once). Fewer lines than active connections is a usage error.
 * --header "Name: value": one extra header line in every request (a
 * session cookie: "Cookie: gh_session=...").
 * Output: one line of key=value pairs (parsed by the tests); rps is the
 * responses received while the run was timed (the first requests included)
 * per second of it.
 */

enum kind { K_IDLE, K_ACTIVE, K_SLOW, K_PROBE };
enum state { S_CONNECTING, S_SENDING, S_READING, S_WAITING, S_DONE };

typedef struct conn {
  int fd;
  enum kind kind;
  enum state state;
  uint64_t t_start;   /* request start (ms) for latency and timeouts */
  uint64_t next_send; /* SLOW: next dribble; PROBE: next request */
  const char *out;
  size_t out_len, out_off;
  char in[2048];
  size_t in_len;
  bool in_body;       /* the head is parsed; body_left bytes to come */
  uint64_t body_left;
  int status;         /* of the response being read */
  unsigned slow_sent;
  bool final_check;   /* IDLE: the end-of-run request */
  const char *first;  /* ACTIVE with --first-headers: the first request */
  size_t first_len;
  bool first_sent;
} conn_t;

static struct {
  struct sockaddr_in addr;
  const char *path;
  unsigned conns, active, slow, probes;
  unsigned duration_s, slow_interval_ms, ramp_per_tick;
  bool quiet;
  const char *first_headers;
  const char *header; /* --header: in every request */
  long long expect_length; /* -1: any */
} opt = {.path = "/", .conns = 1000, .active = 50, .duration_s = 10, .slow_interval_ms = 1000,
         .ramp_per_tick = 200, .expect_length = -1};

static struct {
  uint64_t requests, timed_requests, errors, connect_errors, bad_status, bad_length;
  uint64_t unexpected_close, timeouts;
  uint64_t slow_closed, slow_bytes, idle_verified;
  unsigned open_now, open_peak;
  double *lat;
  size_t n_lat, cap_lat;
} st;

static int epfd;
static char request_buf[4096];
static size_t request_len;

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static double now_msf(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void error_at(conn_t *c, uint64_t *counter, const char *what)
{
  (*counter)++;
  st.errors++;
  if (!opt.quiet && st.errors <= 10)
    fprintf(stderr, "gh-load: error (%s) on a %s connection\n", what,
            c->kind == K_IDLE ? "idle" : c->kind == K_ACTIVE ? "active" : c->kind == K_SLOW ? "slow" : "probe");
}

static void conn_close(conn_t *c)
{
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
    st.open_now--;
  }
}

static void watch(conn_t *c, uint32_t events, int op)
{
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) != 0) {
    perror("gh-load: epoll_ctl");
    exit(2);
  }
}

static bool conn_open(conn_t *c)
{
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    error_at(c, &st.connect_errors, strerror(errno));
    return false;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  st.open_now++;
  if (st.open_now > st.open_peak)
    st.open_peak = st.open_now;
  c->in_len = 0;
  c->in_body = false;
  c->slow_sent = 0;
  c->t_start = now_ms();
  if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof(opt.addr)) != 0 && errno != EINPROGRESS) {
    error_at(c, &st.connect_errors, strerror(errno));
    conn_close(c);
    return false;
  }
  c->state = S_CONNECTING;
  watch(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
  return true;
}

static void start_request(conn_t *c)
{
  c->out = request_buf;
  c->out_len = request_len;
  if (c->first != NULL && !c->first_sent) {
    c->out = c->first;
    c->out_len = c->first_len;
    c->first_sent = true;
  }
  c->out_off = 0;
  c->in_len = 0;
  c->in_body = false;
  c->state = S_SENDING;
  if (c->kind != K_PROBE)
    c->t_start = now_ms();
}

static const char slow_head[] = "GET / HTTP/1.1\r\nHost: load\r\n";
static const char slow_hdr[] = "X-Slowloris-Header: dribbling-one-byte-at-a-time\r\n";

/* Writes what is pending; returns false when the connection broke. */
static bool flush_out(conn_t *c)
{
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN)
        return true;
      return false;
    }
    c->out_off += (size_t)n;
  }
  return true;
}

/* Consumes the bytes in c->in: 1 a response is complete (status in
 * c->status), 0 need more, -1 bad. The head must fit c->in; the body is
 * counted down and dropped. */
static int parse_response(conn_t *c)
{
  if (c->in_body) {
    if (c->in_len > c->body_left)
      return -1; /* nothing pipelined: extra bytes are a framing error */
    c->body_left -= c->in_len;
    c->in_len = 0;
    return c->body_left == 0 ? 1 : 0;
  }
  c->in[c->in_len < sizeof(c->in) ? c->in_len : sizeof(c->in) - 1] = '\0';
  char *end = strstr(c->in, "\r\n\r\n");
  if (end == NULL)
    return c->in_len >= sizeof(c->in) - 1 ? -1 : 0;
  if (sscanf(c->in, "HTTP/1.%*d %d", &c->status) != 1)
    return -1;
  char *cl = strcasestr(c->in, "\r\nContent-Length:");
  if (cl != NULL && cl >= end)
    cl = NULL;
  uint64_t clen = cl ? strtoull(cl + 17, NULL, 10) : 0;
  size_t head = (size_t)(end + 4 - c->in);
  if (opt.expect_length >= 0 && (cl == NULL || clen != (uint64_t)opt.expect_length))
    error_at(c, &st.bad_length, "body length");
  if (c->in_len - head > clen)
    return -1;
  c->body_left = clen - (c->in_len - head);
  c->in_len = 0;
  c->in_body = c->body_left > 0;
  return c->in_body ? 0 : 1;
}

static void record_latency(double ms)
{
  if (st.n_lat == st.cap_lat) {
    st.cap_lat = st.cap_lat ? st.cap_lat * 2 : 4096;
    st.lat = realloc(st.lat, st.cap_lat * sizeof(double));
    if (st.lat == NULL)
      exit(2);
  }
  st.lat[st.n_lat++] = ms;
}

static void on_response(conn_t *c, int status, bool running)
{
  st.requests++;
  if (running)
    st.timed_requests++;
  if (status != 200)
    error_at(c, &st.bad_status, "status");
  switch (c->kind) {
  case K_ACTIVE:
    if (running) {
      /* the next request goes out at once; epoll only if the socket is full */
      start_request(c);
      if (!flush_out(c)) {
        error_at(c, &st.unexpected_close, "send");
        conn_close(c);
        c->state = S_DONE;
      } else if (c->out_off == c->out_len) {
        c->state = S_READING;
      } else {
        watch(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
      }
    } else {
      c->state = S_DONE;
    }
    break;
  case K_IDLE:
    if (c->final_check && status == 200)
      st.idle_verified++;
    c->state = c->final_check ? S_DONE : S_WAITING;
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
    break;
  default:
    break;
  }
}

/* Reads --first-headers: line i (without its line end) goes into active
 * connection i's first request. All requests live in *ret_mem. */
static int load_first_headers(conn_t *cs, char **ret_mem)
{
  FILE *f = fopen(opt.first_headers, "re");
  char *line = NULL, *mem = NULL;
  size_t cap = 0, used = 0, mcap = 0, *offs = NULL;
  unsigned n = 0;
  int ret = -1;
  if (f == NULL) {
    fprintf(stderr, "gh-load: %s: %s\n", opt.first_headers, strerror(errno));
    goto out;
  }
  offs = calloc(opt.active ? opt.active : 1, sizeof(*offs));
  if (offs == NULL)
    goto out;
  while (n < opt.active) {
    ssize_t len = getline(&line, &cap, f);
    if (len < 0)
      break;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0 || memchr(line, '\r', (size_t)len) != NULL || strchr(line, ':') == NULL) {
      fprintf(stderr, "gh-load: %s: line %u is not a header line\n", opt.first_headers, n + 1);
      goto out;
    }
    size_t need = strlen(opt.path) + (size_t)len + 64;
    if (used + need > mcap) {
      mcap = (used + need) * 2;
      char *m = realloc(mem, mcap);
      if (m == NULL)
        goto out;
      mem = m;
    }
    offs[n] = used;
    used += (size_t)sprintf(mem + used, "GET %s HTTP/1.1\r\nHost: load\r\n%s\r\n\r\n", opt.path, line);
    used++; /* the NUL */
    n++;
  }
  if (n < opt.active) {
    fprintf(stderr, "gh-load: %s: %u header lines for %u active connections\n", opt.first_headers,
            n, opt.active);
    goto out;
  }
  for (unsigned i = 0; i < n; i++) {
    cs[i].first = mem + offs[i];
    cs[i].first_len = strlen(cs[i].first);
  }
  *ret_mem = mem;
  mem = NULL;
  ret = 0;
out:
  if (f != NULL)
    fclose(f);
  free(line);
  free(mem);
  free(offs);
  return ret;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  const char *host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                  \
    if (strcmp(a, name) == 0 && v) {     \
      opt.field = (unsigned)atoi(v);     \
      i++;                               \
      continue;                          \
    }
    OPT("--conns", conns)
    OPT("--active", active)
    OPT("--slow", slow)
    OPT("--probes", probes)
    OPT("--duration", duration_s)
    OPT("--slow-interval-ms", slow_interval_ms)
    OPT("--ramp", ramp_per_tick)
#undef OPT
    if (strcmp(a, "--first-headers") == 0 && v) {
      opt.first_headers = v;
      i++;
    } else if (strcmp(a, "--header") == 0 && v && strchr(v, ':') && !strpbrk(v, "\r\n") &&
               strlen(v) < 2048) {
      opt.header = v;
      i++;
    } else if (strcmp(a, "--expect-length") == 0 && v) {
      opt.expect_length = atoll(v);
      i++;
    } else if (strcmp(a, "--path") == 0 && v) {
      opt.path = v;
      i++;
    } else if (strcmp(a, "--host") == 0 && v) {
      host = v;
      i++;
    } else if (strcmp(a, "--port") == 0 && v) {
      port = atoi(v);
      i++;
    } else if (strcmp(a, "-q") == 0) {
      opt.quiet = true;
    } else {
      fprintf(stderr, "usage: gh-load --port P [--host 127.0.0.1] [--conns N] [--active N] [--slow N]\n"
                      "       [--probes N] [--duration S] [--slow-interval-ms M] [--ramp N] [--path /]\n"
                      "       [--first-headers FILE] [--header 'Name: value'] [--expect-length N] [-q]\n");
      return 2;
    }
  }
  opt.addr.sin_family = AF_INET;
  opt.addr.sin_port = htons((uint16_t)port);
  if (port <= 0 || inet_pton(AF_INET, host, &opt.addr.sin_addr) != 1 ||
      (ntohl(opt.addr.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "gh-load: loopback (127.0.0.0/8) targets only\n");
    return 2;
  }
  if (opt.active > opt.conns)
    opt.active = opt.conns;
  if (opt.duration_s > 3600 || opt.conns + opt.slow + opt.probes > 60000 || opt.probes > 1000) {
    fprintf(stderr, "gh-load: bounded: duration <= 3600 s, conns+slow+probes <= 60000, probes <= 1000\n");
    return 2;
  }
  request_len = (size_t)snprintf(request_buf, sizeof(request_buf),
                                 "GET %s HTTP/1.1\r\nHost: load\r\n%s%s\r\n", opt.path,
                                 opt.header ? opt.header : "", opt.header ? "\r\n" : "");
  if (request_len >= sizeof(request_buf)) {
    fprintf(stderr, "gh-load: --path and --header too long\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl = {opt.conns + opt.slow + opt.probes + 64, opt.conns + opt.slow + opt.probes + 64};
  struct rlimit cur;
  getrlimit(RLIMIT_NOFILE, &cur);
  if (cur.rlim_cur < rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    fprintf(stderr, "gh-load: RLIMIT_NOFILE %lu too low for %lu fds\n", (unsigned long)cur.rlim_cur,
            (unsigned long)rl.rlim_cur);
    return 2;
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  size_t total = (size_t)opt.conns + opt.slow + opt.probes;
  conn_t *cs = calloc(total, sizeof(conn_t));
  if (cs == NULL)
    return 2;
  for (size_t i = 0; i < total; i++) {
    cs[i].fd = -1;
    cs[i].kind = i < opt.active ? K_ACTIVE : i < opt.conns ? K_IDLE
                 : i < (size_t)opt.conns + opt.slow ? K_SLOW : K_PROBE;
  }
  char *first_reqs = NULL;
  if (opt.first_headers != NULL && load_first_headers(cs, &first_reqs) != 0) {
    free(cs);
    close(epfd);
    return 2;
  }
  double *pt0 = calloc(total, sizeof(double));

  uint64_t t0 = now_ms(), end = t0 + (uint64_t)opt.duration_s * 1000u, last_report = t0;
  double timed_from = now_msf(), timed_ms = 0;
  size_t next_open = 0;
  bool running = true, final_phase = false;
  uint64_t final_deadline = 0;
  struct epoll_event evs[512];
  for (;;) {
    uint64_t now = now_ms();
    /* ramp: open a batch of connections per tick */
    for (unsigned k = 0; running && k < opt.ramp_per_tick && next_open < total; k++) {
      conn_t *c = &cs[next_open++];
      if (c->kind == K_PROBE) {
        c->next_send = now;
        continue;
      }
      conn_open(c);
    }
    if (running && now >= end) {
      running = false;
      timed_ms = now_msf() - timed_from;
      final_phase = true;
      final_deadline = now + 15000;
      /* every idle connection proves it is still served */
      for (size_t i = 0; i < opt.conns; i++) {
        conn_t *c = &cs[i];
        if (c->kind == K_IDLE && c->fd >= 0 && c->state == S_WAITING) {
          c->final_check = true;
          start_request(c);
          watch(c, EPOLLOUT | EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
        } else if (c->kind == K_IDLE && c->state != S_DONE) {
          error_at(c, &st.unexpected_close, "idle connection not ready at the end");
        }
      }
      for (size_t i = opt.conns; i < total; i++)
        if (cs[i].kind == K_SLOW || (cs[i].kind == K_PROBE && cs[i].fd < 0))
          conn_close(&cs[i]), cs[i].state = S_DONE;
    }
    /* slow dribblers and probe starts */
    for (size_t i = opt.conns; running && i < next_open; i++) {
      conn_t *c = &cs[i];
      if (c->kind == K_SLOW && c->fd >= 0 && c->state == S_WAITING && now >= c->next_send) {
        const char *b = c->slow_sent < sizeof(slow_head) - 1
                            ? &slow_head[c->slow_sent]
                            : &slow_hdr[(c->slow_sent - (sizeof(slow_head) - 1)) % (sizeof(slow_hdr) - 1)];
        size_t len = c->slow_sent < sizeof(slow_head) - 1 ? sizeof(slow_head) - 1 : 1;
        ssize_t n = send(c->fd, b, len, MSG_NOSIGNAL);
        if (n > 0) {
          c->slow_sent += (unsigned)n;
          st.slow_bytes += (uint64_t)n;
        }
        c->next_send = now + opt.slow_interval_ms;
      } else if (c->kind == K_SLOW && c->fd < 0) {
        conn_open(c);
      } else if (c->kind == K_PROBE && c->fd < 0 && now >= c->next_send) {
        pt0[i] = now_msf();
        if (conn_open(c))
          c->t_start = now;
      }
    }
    /* timeouts */
    if (now - last_report >= 500) {
      last_report = now;
      for (size_t i = 0; i < next_open; i++) {
        conn_t *c = &cs[i];
        if (c->fd >= 0 && c->kind != K_SLOW && (c->state == S_READING || c->state == S_SENDING ||
                                                c->state == S_CONNECTING) &&
            now > c->t_start + 10000) {
          error_at(c, &st.timeouts, "timeout");
          conn_close(c);
          c->state = S_DONE;
        }
      }
    }
    if (final_phase) {
      bool pending = false;
      for (size_t i = 0; i < total && !pending; i++)
        if (cs[i].fd >= 0 && cs[i].state != S_DONE && cs[i].state != S_WAITING)
          pending = true;
      if (!pending || now > final_deadline)
        break;
    }
    int n = epoll_wait(epfd, evs, 512, 10);
    for (int e = 0; e < n; e++) {
      conn_t *c = evs[e].data.ptr;
      size_t idx = (size_t)(c - cs);
      if (c->fd < 0)
        continue;
      if (c->state == S_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
          error_at(c, &st.connect_errors, strerror(err));
          conn_close(c);
          c->state = S_DONE;
          continue;
        }
        if (c->kind == K_SLOW) {
          c->state = S_WAITING;
          c->next_send = now_ms();
          watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
          continue;
        }
        start_request(c);
      }
      if (c->state == S_SENDING) {
        if (!flush_out(c)) {
          error_at(c, &st.unexpected_close, "send");
          conn_close(c);
          c->state = S_DONE;
          continue;
        }
        if (c->out_off == c->out_len) {
          c->state = S_READING;
          watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
        }
      }
      if (!(evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        continue;
      for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
        if (r > 0) {
          c->in_len += (size_t)r;
          if (c->kind == K_SLOW) {
            c->in_len = 0; /* the 408: read and forget */
            continue;
          }
          int p = parse_response(c);
          int status = c->status;
          if (p < 0) {
            error_at(c, &st.bad_status, "unparsable response");
            conn_close(c);
            c->state = S_DONE;
            break;
          }
          if (p == 1) {
            if (c->kind == K_PROBE) {
              st.requests++;
              if (status != 200)
                error_at(c, &st.bad_status, "status");
              record_latency(now_msf() - pt0[idx]);
              conn_close(c);
              c->state = S_DONE;
              c->next_send = now_ms();
              break;
            }
            c->in_len = 0;
            c->in_body = false;
            on_response(c, status, running);
            if (c->fd < 0)
              break;
          }
          continue;
        }
        if (r < 0 && errno == EAGAIN)
          break;
        /* EOF or reset */
        if (c->kind == K_SLOW) {
          st.slow_closed++;
          conn_close(c);
          c->state = S_DONE;
        } else if (c->state != S_DONE) {
          error_at(c, &st.unexpected_close, r == 0 ? "closed by server" : strerror(errno));
          conn_close(c);
          c->state = S_DONE;
        }
        break;
      }
    }
  }
  double p50 = 0, p99 = 0, pmax = 0;
  if (st.n_lat > 0) {
    qsort(st.lat, st.n_lat, sizeof(double), cmp);
    p50 = st.lat[st.n_lat / 2];
    p99 = st.lat[(size_t)((double)(st.n_lat - 1) * 0.99)];
    pmax = st.lat[st.n_lat - 1];
  }
  printf("conns=%u active=%u slow=%u probes=%u duration_s=%u open_peak=%u requests=%llu errors=%llu "
         "timed_requests=%llu rps=%.0f bad_length=%llu "
         "connect_errors=%llu bad_status=%llu unexpected_close=%llu timeouts=%llu idle_verified=%llu "
         "slow_closed=%llu slow_bytes=%llu probe_requests=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
         opt.conns, opt.active, opt.slow, opt.probes, opt.duration_s, st.open_peak,
         (unsigned long long)st.requests, (unsigned long long)st.errors,
         (unsigned long long)st.timed_requests,
         timed_ms > 0 ? (double)st.timed_requests * 1000.0 / timed_ms : 0.0,
         (unsigned long long)st.bad_length,
         (unsigned long long)st.connect_errors, (unsigned long long)st.bad_status,
         (unsigned long long)st.unexpected_close, (unsigned long long)st.timeouts,
         (unsigned long long)st.idle_verified, (unsigned long long)st.slow_closed,
         (unsigned long long)st.slow_bytes, st.n_lat, p50, p99, pmax);
  for (size_t i = 0; i < total; i++)
    conn_close(&cs[i]);
  free(cs);
  free(first_reqs);
  free(pt0);
  free(st.lat);
  close(epfd);
  return st.errors == 0 ? 0 : 1;
}

