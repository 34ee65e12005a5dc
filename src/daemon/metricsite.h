/* metricsite.h: metrics_allow of the built-in metrics handler (handler = metrics): who may scrape.
 */
#ifndef GH_DAEMON_METRICSITE_H
#define GH_DAEMON_METRICSITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gatehouse/httpapi.h>

#define GH_METRICS_ALLOW_MAX 16

/* One network a scraper may come from (metrics_allow). */
typedef struct gh_metrics_net {
  int family;       /* AF_INET or AF_INET6 */
  uint8_t addr[16]; /* network bytes (4 for AF_INET) */
  unsigned bits;    /* prefix length */
} gh_metrics_net_t;

/* [site] metrics_allow: default "loopback" (127.0.0.0/8, ::1 and Unix
 * sockets); "any"; or addresses / networks (ADDR or ADDR/BITS, IPv4 or
 * IPv6), "loopback" and "unix" among them. */
typedef struct gh_metrics_allow {
  bool set; /* given in the file (else the default) */
  bool any;
  bool unix_peers;
  size_t n;
  gh_metrics_net_t nets[GH_METRICS_ALLOW_MAX];
} gh_metrics_allow_t;

/** Parses a metrics_allow value into *ret. 0, or -1 with a message in msg. */
int gh_daemon_metrics_allow_parse(const char *value, gh_metrics_allow_t *ret, char *msg,
                                  size_t msglen);

/** Whether the connection's peer may scrape; NULL or an unset list: no
 *  (config.c gives every metrics site one, "loopback" by default). */
bool gh_daemon_metrics_allowed(const gh_metrics_allow_t *allow, const gh_conn_info_t *ci);

#endif
