/* proxy_negotiate_get.c: test tool: one GET to an upstream with the proxy's Negotiate
 * (proxy_negotiate.c), mutual authentication checked. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "proxy_negotiate.h"

/* proxy-negotiate-get CCACHE SPN PORT PATH: prints "status N", "mutual ok|<why>" and the body
 * from 127.0.0.1:PORT; exit 0 only when both the request and the mutual check succeeded. */
int main(int argc, char **argv)
{
  static char resp[256 * 1024];
  struct sockaddr_in sa = {.sin_family = AF_INET};
  proxy_negotiate_t *n = NULL;
  char err[512], req[128 * 1024], *value = NULL, *body, *line, *save = NULL;
  const char *www[16];
  size_t nw = 0, got = 0;
  ssize_t r;
  int fd, status = 0, ret;

  if (argc != 5) {
    fprintf(stderr, "usage: %s CCACHE SPN PORT PATH\n", argv[0]);
    return 2;
  }
  ret = proxy_negotiate_start(argv[1], argv[2], &n, &value, err, sizeof(err));
  if (ret != 0) {
    printf("start failed: %s\n", err);
    return 1;
  }
  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\nAccept: application/json\r\n"
           "Connection: close\r\n\r\n",
           argv[4], value);
  free(value);
  sa.sin_port = htons((uint16_t)atoi(argv[3]));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
    printf("connect failed: %s\n", strerror(errno));
    return 1;
  }
  while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
    got += (size_t)r;
  resp[got] = '\0';
  close(fd);
  body = strstr(resp, "\r\n\r\n");
  if (body == NULL) {
    printf("no response head\n");
    return 1;
  }
  *body = '\0';
  body += 4;
  for (line = strtok_r(resp, "\r\n", &save); line != NULL; line = strtok_r(NULL, "\r\n", &save)) {
    if (status == 0)
      sscanf(line, "HTTP/1.%*d %d", &status);
    else if (strncasecmp(line, "WWW-Authenticate:", 17) == 0 && nw < 16)
      www[nw++] = line + 17;
  }
  printf("status %d\n", status);
  ret = proxy_negotiate_finish(n, www, nw, err, sizeof(err));
  printf("mutual %s\n", ret == 0 ? "ok" : err);
  printf("%s\n", body);
  proxy_negotiate_free(n);
  return ret == 0 && status == 200 ? 0 : 1;
}
