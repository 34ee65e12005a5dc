/* proxy_conf.c: the proxy module's configuration keys (typed, checked at load) and their checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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
  static const char *const kinds[] = {"user", "groups", "principal", "auth-type", "group-names"};
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
    snprintf(why, whylen,
             "not KIND:Field-Name with KIND user, groups, group-names, principal or auth-type");
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

/* ---- a site's keys, read once per configuration ---- */

int proxy_module_id = -1;

static bool site_bool(gh_http_context_t *ctx, const char *key)
{
  bool v = false;
  return gh_http_context_get_config_bool(ctx, key, &v) == 0 && v;
}

/* upstream_* timeouts, keep-alive, proxy_via: false when one cannot be
 * read (the site's requests then get 500) */
static bool read_numbers(gh_http_context_t *ctx, proxy_site_t *s)
{
  return gh_http_context_get_config_uint(ctx, "upstream_connect_timeout", &s->connect_ms) == 0 &&
         gh_http_context_get_config_uint(ctx, "upstream_read_timeout", &s->read_ms) == 0 &&
         gh_http_context_get_config_uint(ctx, "upstream_fail_timeout", &s->fail_ms) == 0 &&
         gh_http_context_get_config_uint(ctx, "upstream_keepalive", &s->keepalive) == 0 &&
         gh_http_context_get_config_bool(ctx, "proxy_via", &s->via) == 0;
}

/* identity_headers: KIND:Field-Name words (checked at load) */
static void read_identity(gh_http_context_t *ctx, proxy_site_t *s)
{
  const char *w;
  for (size_t i = 0; s->n_ident < PROXY_MAX_IDENT &&
                     gh_http_context_get_config_string(ctx, "identity_headers", i, &w) == 0;
       i++) {
    const char *colon = strchr(w, ':');
    if (colon == NULL)
      continue;
    s->ident_name[s->n_ident] = colon + 1;
    s->ident_kind[s->n_ident++] = proxy_identity_kind(w, (size_t)(colon - w));
  }
}

static void add_strip(proxy_site_t *s, const char *name)
{
  size_t n = strlen(name);
  if (n == 0)
    return;
  s->strip[s->n_strip++] = (proxy_name_t){name, n};
  s->strip_lens |= 1ull << ((n < 64 ? n : 64) - 1);
}

void proxy_site_prepare(proxy_site_t *s)
{
  s->n_strip = 0;
  s->strip_lens = 0;
  for (size_t i = 0; i < s->n_ident; i++) {
    size_t n = strlen(s->ident_name[i]);
    add_strip(s, s->ident_name[i]);
    s->ident_pre_len[i] = 0;
    if (n == 0 || n > PROXY_IDENT_NAME_MAX)
      continue; /* not sent (refused at load anyway); still removed */
    memcpy(s->ident_pre[i], s->ident_name[i], n);
    memcpy(s->ident_pre[i] + n, ": ", 3);
    s->ident_pre_len[i] = n + 2;
  }
  if (s->idm.jwt_key != NULL && s->idm.jwt_field != NULL)
    add_strip(s, s->idm.jwt_field);
}

static int site_build(gh_http_context_t *ctx, void **ret_data)
{
  proxy_site_t *s = calloc(1, sizeof(*s));
  const char *v;
  if (s == NULL)
    return -ENOMEM;
  s->ok = read_numbers(ctx, s);
  s->x_forwarded = site_bool(ctx, "proxy_x_forwarded");
  s->forwarded = site_bool(ctx, "proxy_forwarded");
  if (gh_http_context_get_config_string(ctx, "upstream_host", 0, &s->upstream_host) != 0)
    s->upstream_host = NULL;
  while (s->ok && s->n_ups < PROXY_MAX_UPSTREAMS &&
         gh_http_context_get_config_string(ctx, "upstream", s->n_ups, &v) == 0) {
    s->ups[s->n_ups] = proxy_upstream_get(v);
    if (s->ups[s->n_ups++] == NULL) {
      free(s); /* out of memory: not kept, the next request tries again */
      return -ENOMEM;
    }
  }
  read_identity(ctx, s);
  proxy_idm_conf_read(ctx, &s->idm);
  proxy_site_prepare(s);
  *ret_data = s;
  return 0;
}

const proxy_site_t *proxy_site_get(gh_http_context_t *ctx)
{
  void *s = NULL;
  return gh_http_context_get_site_data(ctx, proxy_module_id, site_build, free, &s) == 0 ? s : NULL;
}
