/* listener.c: listen-address parsing and listening socket creation. */
#include "httpapi/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpapi/internal.h"
#include "util/alloc.h"

static int parse_port(const char *s, in_port_t *ret_port)
{
  int ret = GH_EPARSE;
  char *end = NULL;
  if (*s < '0' || *s > '9')
    goto out;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > 65535)
    goto out;
  *ret_port = htons((in_port_t)v);
  ret = 0;
out:
  return ret;
}

int gh__listener_parse(const char *address, struct sockaddr_storage *ret_addr,
                       socklen_t *ret_len)
{
  int ret = GH_EPARSE;
  struct sockaddr_storage ss;
  socklen_t len = 0;
  char host[256];
  in_port_t port;
  memset(&ss, 0, sizeof(ss));

  if (address == NULL)
    goto out;
  if (strncmp(address, "unix:", 5) == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    const char *path = address + 5;
    size_t n = strlen(path);
    if (n == 0 || path[0] != '/')
      goto out;
    if (n >= sizeof(un->sun_path)) {
      ret = -ENAMETOOLONG;
      goto out;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n + 1);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    ret = 0;
    goto out;
  }
  const char *colon;
  if (address[0] == '[') {
    const char *rb = strchr(address, ']');
    if (rb == NULL || rb[1] != ':' || (size_t)(rb - address - 1) >= sizeof(host))
      goto out;
    memcpy(host, address + 1, (size_t)(rb - address - 1));
    host[rb - address - 1] = '\0';
    if (parse_port(rb + 2, &port) != 0)
      goto out;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
      goto out;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = port;
    len = sizeof(*s6);
    ret = 0;
    goto out;
  }
  colon = strrchr(address, ':');
  if (colon == NULL || (size_t)(colon - address) >= sizeof(host))
    goto out;
  memcpy(host, address, (size_t)(colon - address));
  host[colon - address] = '\0';
  if (parse_port(colon + 1, &port) != 0 || strchr(host, ':') != NULL)
    goto out;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  s4->sin_family = AF_INET;
  s4->sin_port = port;
  len = sizeof(*s4);
  if (host[0] == '\0' || strcmp(host, "*") == 0) {
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    ret = 0;
  } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    ret = 0;
  } else {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    if (getaddrinfo(host, NULL, &hints, &res) == 0 && res != NULL &&
        res->ai_addrlen <= sizeof(ss)) {
      memcpy(&ss, res->ai_addr, res->ai_addrlen);
      len = res->ai_addrlen;
      if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = port;
      else
        ((struct sockaddr_in6 *)&ss)->sin6_port = port;
      ret = 0;
    }
    if (res != NULL)
      freeaddrinfo(res);
  }
out:
  if (ret == 0) {
    *ret_addr = ss;
    *ret_len = len;
  }
  return ret;
}

/* One more socket in the SO_REUSEPORT group of l (bound to l's address). */
static int open_copy(gh__listener_t *l, int *ret_fd)
{
  int one = 1, ret = 0;
  int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      (l->addr.ss_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
      bind(fd, (struct sockaddr *)&l->addr, l->addr_len) != 0 || listen(fd, 4096) != 0) {
    ret = -errno;
    close(fd);
    return ret;
  }
  *ret_fd = fd;
  return 0;
}

int gh__listener_open(const char *address, unsigned copies, gh__listener_t **ret_listener)
{
  int ret, fd = -1;
  gh__listener_t *l = NULL;
  struct sockaddr_storage ss;
  socklen_t len;

  ret = gh__listener_parse(address, &ss, &len);
  if (ret != 0)
    goto out;
  l = gh__calloc(1, sizeof(*l));
  if (l == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  l->kind = GH__KIND_LISTENER;
  l->fd = -1;
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ret = -errno;
    goto out;
  }
  int one = 1;
  if (ss.ss_family == AF_UNIX) {
    const char *path = ((struct sockaddr_un *)&ss)->sun_path;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
      unlink(path);
    l->unix_path = gh__strdup(path);
    if (l->unix_path == NULL) {
      ret = -ENOMEM;
      goto out;
    }
  } else {
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (copies > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
      ret = -errno;
      goto out;
    }
    if (ss.ss_family == AF_INET6)
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    ret = -errno;
    goto out;
  }
  if (ss.ss_family == AF_UNIX)
    (void)chmod(l->unix_path, 0666);
  if (listen(fd, 4096) != 0) {
    ret = -errno;
    goto out;
  }
  l->addr_len = sizeof(l->addr);
  if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addr_len) != 0) {
    ret = -errno;
    goto out;
  }
  l->fd = fd;
  fd = -1;
  if (copies > 1 && l->unix_path == NULL) {
    /* the others bind the port the first one got (port 0: an ephemeral one) */
    l->copies = gh__calloc(copies, sizeof(*l->copies));
    if (l->copies == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    l->copies[0] = l->fd;
    l->n_copies = 1;
    for (; l->n_copies < copies; l->n_copies++) {
      ret = open_copy(l, &l->copies[l->n_copies]);
      if (ret != 0)
        goto out;
    }
  }
  ret = 0;
out:
  if (fd >= 0)
    close(fd);
  if (ret == 0) {
    *ret_listener = l;
  } else if (l != NULL) {
    for (unsigned i = 1; i < l->n_copies; i++)
      close(l->copies[i]);
    if (l->fd >= 0)
      close(l->fd);
    free(l->copies);
    free(l->unix_path);
    free(l);
  }
  return ret;
}

void gh__listener_keep_copy(gh__listener_t *l, unsigned index)
{
  if (l->n_copies > 1) {
    l->fd = l->copies[index % l->n_copies];
    for (unsigned i = 0; i < l->n_copies; i++)
      if (l->copies[i] != l->fd)
        close(l->copies[i]);
  }
  free(l->copies);
  l->copies = NULL;
  l->n_copies = 0;
  /* the socket file belongs to the process that made it */
  free(l->unix_path);
  l->unix_path = NULL;
}

void gh__listener_close(gh__listener_t *l)
{
  if (l == NULL)
    return;
  for (unsigned i = 0; i < l->n_copies; i++)
    if (l->copies[i] != l->fd)
      close(l->copies[i]);
  free(l->copies);
  if (l->fd >= 0)
    close(l->fd);
  if (l->unix_path != NULL)
    unlink(l->unix_path);
  gh__tls_listener_free(l->tls);
  free(l->unix_path);
  free(l);
}
