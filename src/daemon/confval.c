/* confval.c: value parsers shared by the daemon's configuration files. */
#include "confval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int gh_daemon_set_str(char **dst, const char *v, char *msg, size_t msglen)
{
  char *n = strdup(v);
  if (n == NULL) {
    snprintf(msg, msglen, "out of memory");
    return 0;
  }
  free(*dst);
  *dst = n;
  return 1;
}

int gh_daemon_parse_bool(const char *v, bool *ret, char *msg, size_t msglen)
{
  if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
    *ret = true;
  else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
           !strcmp(v, "0"))
    *ret = false;
  else {
    snprintf(msg, msglen, "'%s' is not yes or no", v);
    return 0;
  }
  return 1;
}

bool gh_daemon_parse_uint(const char *v, unsigned long long max, unsigned suffixes,
                          unsigned long long *ret)
{
  char *end = NULL;
  unsigned long long n;
  if (*v < '0' || *v > '9')
    return false;
  errno = 0;
  n = strtoull(v, &end, 10);
  if (errno != 0 || n > max)
    return false;
  if ((suffixes & GH_CONF_SUFFIX_K) && (*end == 'k' || *end == 'K'))
    n *= 1024, end++;
  else if ((suffixes & GH_CONF_SUFFIX_M) && (*end == 'm' || *end == 'M'))
    n *= 1024 * 1024, end++;
  if (*end != '\0' || n > max)
    return false;
  *ret = n;
  return true;
}
