/* proxy_conf.c: the proxy module's configuration keys (typed, checked at load) and their checks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"
#include "proxy_conf.h"
#include "proxy_idmodes.h"

static int check_upstream(const char *key, const char *value, char *why, size_t whylen)
{
  (void)key;
  return proxy_upstream_check(value, why, whylen);
}

static bool is_tchar(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int proxy_identity_kind(const char *word, size_t len)
{
  static const char *const kinds[] = {"user", "groups", "principal", "auth-type"};
  for (int i = 0; i < (int)(sizeof(kinds) / sizeof(kinds[0])); i++)
    if (strlen(kinds[i]) == len && strncmp(word, kinds[i], len) == 0)
      return i;
  return -1;
}

/* identity_headers: one word is one KIND:Field-Name (the list type splits
 * the words; each is checked here). */
static int check_identity_word(const char *key, const char *value, char *why, size_t whylen)
{
  const char *colon = strchr(value, ':');
  (void)key;
  if (colon == NULL || proxy_identity_kind(value, (size_t)(colon - value)) < 0) {
    snprintf(why, whylen, "not KIND:Field-Name with KIND user, groups, principal or auth-type");
    return -EINVAL;
  }
  if (colon[1] == '\0' || strlen(colon + 1) > 64) {
    snprintf(why, whylen, "a field name is 1 to 64 characters");
    return -EINVAL;
  }
  for (const char *p = colon + 1; *p; p++)
    if (!is_tchar(*p)) {
      snprintf(why, whylen, "'%c' is not allowed in a field name", *p);
      return -EINVAL;
    }
  return 0;
}

/* The check callback sees a LIST key's value whole: each word in turn. */
static int check_identity(const char *key, const char *value, char *why, size_t whylen)
{
  char word[128];
  const char *p = value;
  int ret = 0, seen = 0;
  while (ret == 0 && *p) {
    size_t n;
    p += strspn(p, " \t,");
    n = strcspn(p, " \t,");
    if (n == 0)
      break;
    if (n >= sizeof(word)) {
      snprintf(why, whylen, "word too long");
      return -EINVAL;
    }
    memcpy(word, p, n);
    word[n] = '\0';
    ret = check_identity_word(key, word, why, whylen);
    if (ret == 0) {
      int k = proxy_identity_kind(word, strcspn(word, ":"));
      if (seen & (1 << k)) {
        snprintf(why, whylen, "%.*s given twice", (int)strcspn(word, ":"), word);
        ret = -EINVAL;
      }
      seen |= 1 << k;
    }
    p += n;
  }
  return ret;
}

const gh_module_key_t proxy_keys[] = {
    {.name = "upstream",
     .type = GH_CONFIG_STRING,
     .flags = GH_CONFIG_SITE | GH_CONFIG_REPEATABLE,
     .check = check_upstream},
    {.name = "upstream_host", .type = GH_CONFIG_STRING, .flags = GH_CONFIG_SITE},
    {.name = "upstream_connect_timeout",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "5s",
     .min = 1,
     .max = 3600 * 1000},
    {.name = "upstream_read_timeout",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "60s",
     .min = 1,
     .max = 24 * 3600 * 1000},
    {.name = "upstream_fail_timeout",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "10s",
     .min = 0,
     .max = 24 * 3600 * 1000},
    {.name = "upstream_keepalive",
     .type = GH_CONFIG_UINT,
     .flags = GH_CONFIG_SITE,
     .default_value = "64",
     .min = 0,
     .max = PROXY_POOL_SLOTS},
    {.name = "upgrade_idle_timeout",
     .type = GH_CONFIG_DURATION,
     .flags = GH_CONFIG_SITE,
     .default_value = "5m",
     .min = 1,
     .max = 24 * 3600 * 1000},
    {.name = "upgrade_max",
     .type = GH_CONFIG_UINT,
     .flags = GH_CONFIG_SITE,
     .default_value = "1024",
     .min = 0,
     .max = 65536},
    {.name = "proxy_via", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE, .default_value = "yes"},
    {.name = "proxy_x_forwarded",
     .type = GH_CONFIG_BOOL,
     .flags = GH_CONFIG_SITE,
     .default_value = "yes"},
    {.name = "proxy_forwarded",
     .type = GH_CONFIG_BOOL,
     .flags = GH_CONFIG_SITE,
     .default_value = "no"},
    {.name = "identity_headers",
     .type = GH_CONFIG_LIST,
     .flags = GH_CONFIG_SITE,
     .check = check_identity},
    PROXY_IDMODE_KEYS,
};

const size_t proxy_n_keys = sizeof(proxy_keys) / sizeof(proxy_keys[0]);
