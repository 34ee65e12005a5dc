/* keys.c: modules' configuration key tables — declaration, checking at load and reload, typed
 * getters. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"

#define KEY_NAME_MAX 64
#define KNOWN_FLAGS (GH_CONFIG_SITE | GH_CONFIG_MODULE | GH_CONFIG_REPEATABLE | GH_CONFIG_SUBPATH)
/* the first version of gh_module_key_t (ABI 2.1) */
#define KEY_SIZE_2_1 (offsetof(gh_module_key_t, check) + sizeof(void *))

/* The pipeline's own keys (read by the engine). */
static const gh__pl_key_t pipeline_keys[] = {
    {.k = {.name = "impersonate", .type = GH_CONFIG_BOOL, .flags = GH_CONFIG_SITE},
     .owner = "pipeline",
     .has_default = true,
     .def = {.ok = true, .b = false}},
};
#define N_PIPELINE_KEYS (sizeof(pipeline_keys) / sizeof(pipeline_keys[0]))

/* ---- values ------------------------------------------------------------ */

void gh__pl_value_done(gh__pl_value_t *v)
{
  free(v->words);
  memset(v, 0, sizeof(*v));
}

/* A unit suffix and what it multiplies by. */
typedef struct unit {
  const char *suffix;
  uint64_t factor;
} unit_t;

static const unit_t size_units[] = {{"", 1},
                                    {"k", 1024},
                                    {"K", 1024},
                                    {"m", 1024 * 1024},
                                    {"M", 1024 * 1024},
                                    {"g", 1024 * 1024 * 1024},
                                    {"G", 1024 * 1024 * 1024},
                                    {NULL, 0}};
static const unit_t time_units[] = {{"", 1000},   {"ms", 1},      {"s", 1000},
                                    {"m", 60000}, {"h", 3600000}, {NULL, 0}};

/* Digits, then one of units' suffixes: the product, without overflow. */
static bool parse_scaled(const char *text, const unit_t *units, uint64_t *ret)
{
  uint64_t n = 0;
  const char *p = text;
  if (!isdigit((unsigned char)*p))
    return false;
  for (; isdigit((unsigned char)*p); p++) {
    if (n > (UINT64_MAX - 9) / 10)
      return false;
    n = n * 10 + (uint64_t)(*p - '0');
  }
  for (; units->suffix != NULL; units++) {
    if (strcmp(p, units->suffix) == 0) {
      if (n > UINT64_MAX / units->factor)
        return false;
      *ret = n * units->factor;
      return true;
    }
  }
  return false;
}

static int parse_bool(const char *text, bool *ret, char *why, size_t whylen)
{
  static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off",
                                                                              "0"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
      *ret = strcasecmp(text, yes[i]) == 0;
      return 0;
    }
  }
  snprintf(why, whylen, "not yes or no");
  return -EINVAL;
}

/* LIST: the words in one allocation (array of pointers, then the text). */
static int parse_list(const char *text, gh__pl_value_t *out, char *why, size_t whylen)
{
  static const char sep[] = " \t,";
  size_t len = strlen(text), n = 0;
  char *copy, *save = NULL;
  for (const char *p = text; *p != '\0'; p += strcspn(p, sep)) {
    p += strspn(p, sep);
    if (*p != '\0')
      n++;
  }
  out->words = gh__malloc((n + 1) * sizeof(char *) + len + 1);
  if (out->words == NULL) {
    snprintf(why, whylen, "out of memory");
    return -ENOMEM;
  }
  copy = (char *)(out->words + n + 1);
  memcpy(copy, text, len + 1);
  for (char *w = strtok_r(copy, sep, &save); w != NULL; w = strtok_r(NULL, sep, &save))
    out->words[out->n_words++] = w;
  out->words[out->n_words] = NULL;
  return 0;
}

int gh__pl_parse_value(const gh__pl_key_t *d, const char *key, const char *text,
                       gh__pl_value_t *out, char *why, size_t whylen)
{
  const gh_module_key_t *k = &d->k;
  uint64_t max = k->max != 0 ? k->max : UINT64_MAX;
  int ret = 0;
  memset(out, 0, sizeof(*out));
  switch (k->type) {
  case GH_CONFIG_STRING:
    out->s = text;
    break;
  case GH_CONFIG_PATH:
    out->s = text;
    if (text[0] != '/') {
      snprintf(why, whylen, "not an absolute path");
      ret = -EINVAL;
    }
    break;
  case GH_CONFIG_BOOL:
    ret = parse_bool(text, &out->b, why, whylen);
    break;
  case GH_CONFIG_UINT:
    ret = parse_scaled(text, size_units, &out->u) ? 0 : -EINVAL;
    if (ret < 0)
      snprintf(why, whylen, "not a number (digits, optionally k, m or g)");
    else if (out->u < k->min || out->u > max) {
      snprintf(why, whylen, "out of range (%llu to %llu)", (unsigned long long)k->min,
               (unsigned long long)max);
      ret = -EINVAL;
    }
    break;
  case GH_CONFIG_DURATION:
    ret = parse_scaled(text, time_units, &out->u) ? 0 : -EINVAL;
    if (ret < 0)
      snprintf(why, whylen, "not a duration (30, 30s, 500ms, 2m, 1h; no unit: seconds)");
    else if (out->u < k->min || out->u > max) {
      if (k->max != 0)
        snprintf(why, whylen, "out of range (%llu ms to %llu ms)", (unsigned long long)k->min,
                 (unsigned long long)max);
      else
        snprintf(why, whylen, "shorter than %llu ms", (unsigned long long)k->min);
      ret = -EINVAL;
    }
    break;
  case GH_CONFIG_LIST:
    ret = parse_list(text, out, why, whylen);
    break;
  default:
    snprintf(why, whylen, "the key has an unknown type");
    ret = -EINVAL;
  }
  if (ret == 0 && k->check != NULL) {
    why[0] = '\0';
    ret = k->check(key, text, why, whylen);
    if (ret >= 0)
      ret = 0;
    else if (why[0] == '\0')
      snprintf(why, whylen, "%s", gh_strerror(ret));
  }
  if (ret < 0)
    gh__pl_value_done(out);
  else
    out->ok = true;
  return ret;
}

/* ---- declarations ------------------------------------------------------ */

/* key is name, or (SUBPATH) "name /sub/path" */
static bool key_matches(const gh__pl_key_t *d, const char *key)
{
  size_t n = strlen(d->k.name);
  if (strncmp(key, d->k.name, n) != 0)
    return false;
  return key[n] == '\0' || ((d->k.flags & GH_CONFIG_SUBPATH) && key[n] == ' ' && key[n + 1] == '/');
}

static const gh__pl_key_t *find_in(const gh__pl_key_t *keys, size_t n, uint32_t scope,
                                   const char *key)
{
  for (size_t i = 0; i < n; i++)
    if ((keys[i].k.flags & scope) && key_matches(&keys[i], key))
      return &keys[i];
  return NULL;
}

static const gh__pl_module_t *module_named(const gh_pipeline_t *pl, const char *name, size_t len)
{
  for (size_t i = 0; i < pl->n_modules; i++)
    if (strlen(pl->modules[i]->name) == len && strncmp(pl->modules[i]->name, name, len) == 0)
      return pl->modules[i];
  return NULL;
}

const gh__pl_key_t *gh__pl_find_key(const gh_pipeline_t *pl, const char *section, const char *key,
                                    const char **ret_owner)
{
  const gh__pl_key_t *d = NULL;
  const char *owner = NULL, *dot;
  const gh__pl_module_t *m;
  if (strncmp(section, "site ", 5) == 0) {
    d = find_in(pipeline_keys, N_PIPELINE_KEYS, GH_CONFIG_SITE, key);
    for (size_t i = 0; i < pl->n_modules && d == NULL; i++)
      d = find_in(pl->modules[i]->keys, pl->modules[i]->n_keys, GH_CONFIG_SITE, key);
    /* NAME.key of a module that declares no keys (untyped, read as text) */
    if (d == NULL && (dot = strchr(key, '.')) != NULL &&
        (m = module_named(pl, key, (size_t)(dot - key))) != NULL && !m->has_keys)
      owner = m->name;
  } else if (strncmp(section, "module ", 7) == 0 &&
             (m = module_named(pl, section + 7, strlen(section + 7))) != NULL) {
    d = find_in(m->keys, m->n_keys, GH_CONFIG_MODULE, key);
    if (d == NULL && !m->has_keys)
      owner = m->name; /* no table: its section is its own business */
  }
  if (d != NULL)
    owner = d->owner;
  if (ret_owner != NULL)
    *ret_owner = owner;
  return d;
}

const char *gh_pipeline_find_key(gh_pipeline_t *pl, const char *section, const char *key)
{
  const char *owner = NULL;
  if (pl != NULL && section != NULL && key != NULL)
    (void)gh__pl_find_key(pl, section, key, &owner);
  return owner;
}

void gh__pl_keys_free(gh__pl_key_t *keys, size_t n)
{
  for (size_t i = 0; i < n; i++)
    gh__pl_value_done(&keys[i].def);
  free(keys);
}

static bool good_name(const char *name)
{
  size_t n = name != NULL ? strlen(name) : 0;
  if (n == 0 || n > KEY_NAME_MAX)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)name[i]) && strchr("_-.", name[i]) == NULL)
      return false;
  return true;
}

/* The table's entries one by one: the growth rule, then each field. */
static int declare(gh_module_registration_t *reg, gh__pl_key_t *d, const gh_module_key_t *src,
                   size_t key_size)
{
  gh_pipeline_t *pl = reg->pl;
  const gh_module_key_t *k = &d->k;
  char why[160];
  int ret = 0;
  ret = gh__pl_struct_in_sized(&d->k, sizeof(d->k), src, key_size, KEY_SIZE_2_1, why, sizeof(why));
  if (ret < 0)
    return gh__pl_reg_fail(reg, ret, "gh_module_key_t: %s", why);
  d->owner = reg->mod->name;
  if (!good_name(k->name))
    return gh__pl_reg_fail(reg, -EINVAL,
                           "config key '%.80s': not a key name (letters, digits, "
                           "'_', '-', '.', at most %d)",
                           k->name ? k->name : "(null)", KEY_NAME_MAX);
  if (k->type < GH_CONFIG_STRING || k->type > GH_CONFIG_LIST || (k->flags & ~KNOWN_FLAGS) != 0 ||
      (k->flags & (GH_CONFIG_SITE | GH_CONFIG_MODULE)) == 0 ||
      ((k->flags & GH_CONFIG_SUBPATH) && !(k->flags & GH_CONFIG_SITE)) ||
      ((k->flags & GH_CONFIG_REPEATABLE) &&
       (k->type == GH_CONFIG_BOOL || k->type == GH_CONFIG_UINT || k->type == GH_CONFIG_DURATION)) ||
      (k->max != 0 && k->min > k->max))
    return gh__pl_reg_fail(reg, -EINVAL, "config key '%s': bad type, flags or range", k->name);
  if (k->flags & GH_CONFIG_SITE) {
    const gh__pl_key_t *other = NULL;
    if (find_in(pipeline_keys, N_PIPELINE_KEYS, GH_CONFIG_SITE, k->name) != NULL)
      other = pipeline_keys;
    for (size_t i = 0; i < pl->n_modules && other == NULL; i++)
      other = find_in(pl->modules[i]->keys, pl->modules[i]->n_keys, GH_CONFIG_SITE, k->name);
    if (other != NULL)
      return gh__pl_reg_fail(reg, GH_EEXISTS, "config key '%s': a site key of %s already", k->name,
                             other->owner);
  }
  if (k->default_value != NULL) {
    ret = gh__pl_parse_value(d, k->name, k->default_value, &d->def, why, sizeof(why));
    if (ret < 0)
      return gh__pl_reg_fail(reg, -EINVAL, "config key '%s': default '%.80s': %s", k->name,
                             k->default_value, why);
    d->has_default = true;
  }
  return 0;
}

int gh_module_registration_set_config_keys(gh_module_registration_t *reg,
                                           const gh_module_key_t *keys, size_t n, size_t key_size)
{
  int ret = 0;
  gh__pl_key_t *decl = NULL;
  size_t done = 0;
  if (reg == NULL || (keys == NULL && n > 0) || n > 1024) {
    ret = reg != NULL ? gh__pl_reg_fail(reg, -EINVAL, "config keys: no table") : -EINVAL;
    goto out;
  }
  if (reg->mod->has_keys) {
    ret = gh__pl_reg_fail(reg, GH_EEXISTS, "config keys declared twice");
    goto out;
  }
  decl = gh__calloc(n + 1, sizeof(*decl));
  if (decl == NULL) {
    ret = gh__pl_reg_fail(reg, -ENOMEM, "config keys: out of memory");
    goto out;
  }
  for (; done < n; done++) {
    const gh_module_key_t *src = (const void *)((const char *)keys + done * key_size);
    ret = declare(reg, &decl[done], src, key_size);
    if (ret < 0)
      goto out;
    /* one name once per scope within the table */
    for (size_t j = 0; j < done; j++) {
      if (strcmp(decl[j].k.name, decl[done].k.name) == 0 &&
          (decl[j].k.flags & decl[done].k.flags & (GH_CONFIG_SITE | GH_CONFIG_MODULE))) {
        ret = gh__pl_reg_fail(reg, -EINVAL, "config key '%s' declared twice", decl[done].k.name);
        done++;
        goto out;
      }
    }
  }
  reg->mod->keys = decl;
  reg->mod->n_keys = n;
  reg->mod->has_keys = true;
  decl = NULL;
out:
  if (decl != NULL)
    gh__pl_keys_free(decl, done);
  return ret;
}

/* ---- checking a configuration ----------------------------------------- */

__attribute__((format(printf, 4, 5))) static int
config_err(char *errbuf, size_t errlen, const gh__pl_entry_t *e, const char *fmt, ...)
{
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (errbuf != NULL && errlen > 0) {
    if (e->file != NULL)
      snprintf(errbuf, errlen, "%s:%u: [%s] %s", e->file, e->line, e->section, what);
    else
      snprintf(errbuf, errlen, "[%s] %s", e->section, what);
  }
  return GH_ECONFIG;
}

/* The earlier line of a one-value key in the same section, or NULL. */
static const gh__pl_entry_t *given_before(const gh_pipeline_config_t *cfg, size_t i)
{
  const gh__pl_entry_t *e = &cfg->entries[i];
  for (size_t j = 0; j < i; j++) {
    const gh__pl_entry_t *o = &cfg->entries[j];
    if (o->key != NULL && strcmp(o->key, e->key) == 0 && strcmp(o->section, e->section) == 0)
      return o;
  }
  return NULL;
}

static int check_entry(gh_pipeline_t *pl, const gh_pipeline_config_t *cfg, size_t i, char *errbuf,
                       size_t errlen)
{
  const gh__pl_entry_t *e = &cfg->entries[i], *first;
  const char *owner = NULL, *dot;
  const gh__pl_key_t *d;
  gh__pl_value_t v;
  char why[300];
  bool site = strncmp(e->section, "site ", 5) == 0;
  int ret = 0;
  if (site && e->section[5] != '/')
    return config_err(errbuf, errlen, e, "site path must start with '/'");
  if (e->key == NULL)
    return 0;
  if (site && strcmp(e->key, "handler") == 0 &&
      module_named(pl, e->value, strlen(e->value)) == NULL)
    return config_err(errbuf, errlen, e, "handler = %s: no module of that name is loaded",
                      e->value);
  d = gh__pl_find_key(pl, e->section, e->key, &owner);
  if (d == NULL) {
    if (e->host || owner != NULL || (!site && strncmp(e->section, "module ", 7) != 0))
      return 0;
    if (site && (dot = strchr(e->key, '.')) != NULL &&
        module_named(pl, e->key, (size_t)(dot - e->key)) == NULL)
      return config_err(errbuf, errlen, e, "%s: unknown key (no module '%.*s' is loaded)", e->key,
                        (int)(dot - e->key), e->key);
    return config_err(errbuf, errlen, e, "%s: unknown key%s%s", e->key, site ? "" : " of module ",
                      site ? "" : e->section + 7);
  }
  if (!(d->k.flags & GH_CONFIG_REPEATABLE) && (first = given_before(cfg, i)) != NULL) {
    if (first->file != NULL)
      return config_err(errbuf, errlen, e,
                        "%s: given twice, first at line %u (this key takes "
                        "one value)",
                        e->key, first->line);
    return config_err(errbuf, errlen, e, "%s: given twice (this key takes one value)", e->key);
  }
  ret = gh__pl_parse_value(d, e->key, e->value, &v, why, sizeof(why));
  gh__pl_value_done(&v);
  if (ret < 0)
    return config_err(errbuf, errlen, e, "%s = %s: %s", e->key, e->value, why);
  return 0;
}

int gh__pl_config_validate(gh_pipeline_t *pl, const gh_pipeline_config_t *cfg, char *errbuf,
                           size_t errlen)
{
  int ret = 0;
  for (size_t i = 0; i < cfg->n && ret == 0; i++)
    ret = check_entry(pl, cfg, i, errbuf, errlen);
  return ret;
}

void gh__pl_config_bind(gh_pipeline_t *pl, gh_pipeline_config_t *cfg)
{
  char why[300];
  for (size_t i = 0; cfg != NULL && i < cfg->n; i++) {
    gh__pl_entry_t *e = &cfg->entries[i];
    if (e->key == NULL || e->decl != NULL)
      continue;
    e->decl = gh__pl_find_key(pl, e->section, e->key, NULL);
    /* a value that does not parse stays !ok: its getters fail closed */
    if (e->decl != NULL)
      (void)gh__pl_parse_value(e->decl, e->key, e->value, &e->v, why, sizeof(why));
  }
}

/* ---- typed getters ------------------------------------------------------ */

enum { WANT_BOOL, WANT_UINT, WANT_STRING };

static bool type_fits(gh_config_type_t t, int want)
{
  switch (want) {
  case WANT_BOOL:
    return t == GH_CONFIG_BOOL;
  case WANT_UINT:
    return t == GH_CONFIG_UINT || t == GH_CONFIG_DURATION;
  default:
    return t == GH_CONFIG_STRING || t == GH_CONFIG_PATH || t == GH_CONFIG_LIST;
  }
}

/* The i-th string of one value (a LIST's words, or the text) */
static bool nth_of(const gh__pl_value_t *v, gh_config_type_t t, size_t *i, const char **ret)
{
  size_t count = t == GH_CONFIG_LIST ? v->n_words : 1;
  if (*i < count) {
    *ret = t == GH_CONFIG_LIST ? v->words[*i] : v->s;
    return true;
  }
  *i -= count;
  return false;
}

/* One value for a getter, copied out; for strings the i-th (i counts down
 * across the values of a repeatable key). */
static int take(const gh__pl_key_t *d, const gh__pl_value_t *v, int want, size_t *i, void *out)
{
  if (!v->ok)
    return GH_ECONFIG; /* did not pass its check: never read as anything */
  if (want == WANT_BOOL)
    *(bool *)out = v->b;
  else if (want == WANT_UINT)
    *(uint64_t *)out = v->u;
  else if (!nth_of(v, d->k.type, i, out))
    return GH_ENOT_FOUND;
  return 0;
}

/* The value of key among the entries (items[0..n), or array[0..n) of
 * section), else the default. */
static int lookup(const gh__pl_key_t *d, const char *key, const gh__pl_entry_t *const *items,
                  const gh__pl_entry_t *array, size_t n, const char *section, int want, size_t i,
                  void *out)
{
  const gh__pl_entry_t *last = NULL;
  int ret;
  for (size_t k = 0; k < n; k++) {
    const gh__pl_entry_t *e = items != NULL ? items[k] : &array[k];
    if (e->key == NULL || strcmp(e->key, key) != 0 ||
        (section != NULL && strcmp(e->section, section) != 0))
      continue;
    if (e->decl != d)
      return GH_ECONFIG; /* never bound: installed unchecked before the declaration */
    last = e;
    if (want == WANT_STRING && (ret = take(d, &e->v, want, &i, out)) != GH_ENOT_FOUND)
      return ret;
  }
  if (last != NULL) /* strings: i is past the values; others: the (one) value */
    return want == WANT_STRING ? GH_ENOT_FOUND : take(d, &last->v, want, &i, out);
  if (!d->has_default)
    return GH_ENOT_FOUND;
  return take(d, &d->def, want, &i, out);
}

/* The declaration of a site key, remembered per thread: modules read a
 * dozen keys per request by literal name, and the search walks every
 * module's table comparing names. A slot holds the pipeline (its unique id
 * and module count: a module loaded later may declare the key), the key's
 * address and a copy of its text (the address alone could be a buffer
 * reused for another name). */
#define KEY_MEMO_SLOTS 128
#define KEY_MEMO_NAME 48
typedef struct key_memo {
  uint64_t pl_id;
  size_t n_modules;
  const char *key;
  const gh__pl_key_t *d;
  char name[KEY_MEMO_NAME];
} key_memo_t;
static __thread key_memo_t t_key_memo[KEY_MEMO_SLOTS];

static const gh__pl_key_t *site_key(const gh_pipeline_t *pl, const char *key)
{
  uint64_t h = (uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15); /* Fibonacci hashing */
  key_memo_t *m = &t_key_memo[h >> 57];
  const gh__pl_key_t *d;
  size_t len;
  if (m->key == key && m->pl_id == pl->id && m->n_modules == pl->n_modules &&
      strcmp(m->name, key) == 0)
    return m->d;
  d = gh__pl_find_key(pl, "site /", key, NULL);
  len = strlen(key);
  if (d != NULL && len < KEY_MEMO_NAME) {
    m->pl_id = pl->id;
    m->n_modules = pl->n_modules;
    m->key = key;
    m->d = d;
    memcpy(m->name, key, len + 1);
  }
  return d;
}

static int site_get(gh_http_context_t *ctx, const char *key, int want, size_t i, void *out)
{
  const gh__pl_key_t *d;
  int ret;
  if (ctx == NULL || key == NULL || out == NULL) {
    ret = -EINVAL;
    goto out;
  }
  d = site_key(ctx->pl, key);
  if (d == NULL || !type_fits(d->k.type, want) || (want != WANT_STRING && i != 0)) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->site != NULL)
    ret = lookup(d, key, ctx->site->items, NULL, ctx->site->n_items, NULL, want, i, out);
  else if (ctx->site_section != NULL && ctx->site_section[0] != '\0')
    ret = lookup(d, key, NULL, ctx->cfg->entries, ctx->cfg->n, ctx->site_section, want, i, out);
  else
    ret = lookup(d, key, NULL, NULL, 0, NULL, want, i, out);
out:
  return ret;
}

int gh_http_context_get_config_bool(gh_http_context_t *ctx, const char *key, bool *ret_value)
{
  return site_get(ctx, key, WANT_BOOL, 0, ret_value);
}

int gh_http_context_get_config_uint(gh_http_context_t *ctx, const char *key, uint64_t *ret_value)
{
  return site_get(ctx, key, WANT_UINT, 0, ret_value);
}

int gh_http_context_get_config_string(gh_http_context_t *ctx, const char *key, size_t i,
                                      const char **ret_value)
{
  return site_get(ctx, key, WANT_STRING, i, ret_value);
}

/* Whether e is a line "key /sub" of the site; *ret_sub its path. */
static bool sub_line(const gh__pl_entry_t *e, const char *section, const char *key, size_t klen,
                     const char **ret_sub)
{
  if (e->key == NULL || (section != NULL && strcmp(e->section, section) != 0) ||
      strncmp(e->key, key, klen) != 0 || e->key[klen] != ' ' || e->key[klen + 1] != '/')
    return false;
  *ret_sub = e->key + klen + 1;
  return true;
}

int gh_http_context_get_config_subpath(gh_http_context_t *ctx, const char *key, size_t i,
                                       const char **ret_path)
{
  const gh__pl_key_t *d;
  const char *section = NULL;
  size_t n = 0, klen;
  int ret = GH_ENOT_FOUND;
  if (ctx == NULL || key == NULL || ret_path == NULL) {
    ret = -EINVAL;
    goto out;
  }
  d = site_key(ctx->pl, key);
  if (d == NULL || !(d->k.flags & GH_CONFIG_SUBPATH)) {
    ret = -EINVAL;
    goto out;
  }
  if (ctx->site != NULL)
    n = ctx->site->n_items;
  else if (ctx->site_section != NULL && ctx->site_section[0] != '\0') {
    n = ctx->cfg->n;
    section = ctx->site_section;
  }
  klen = strlen(key);
  for (size_t k = 0; k < n; k++) {
    const gh__pl_entry_t *e = ctx->site != NULL ? ctx->site->items[k] : &ctx->cfg->entries[k];
    const char *sub, *prev;
    bool seen = false;
    if (!sub_line(e, section, key, klen, &sub))
      continue;
    /* each path once, where it first appears */
    for (size_t j = 0; j < k && !seen; j++)
      seen = sub_line(ctx->site != NULL ? ctx->site->items[j] : &ctx->cfg->entries[j], section, key,
                      klen, &prev) &&
             strcmp(prev, sub) == 0;
    if (!seen && i-- == 0) {
      *ret_path = sub;
      ret = 0;
      break;
    }
  }
out:
  return ret;
}

static int server_get(gh_module_server_t *server, const char *module, const char *key, int want,
                      size_t i, void *out)
{
  char section[KEY_NAME_MAX + 16];
  const gh__pl_key_t *d;
  int ret;
  if (server == NULL || module == NULL || key == NULL || out == NULL ||
      strlen(module) > KEY_NAME_MAX) {
    ret = -EINVAL;
    goto out;
  }
  snprintf(section, sizeof(section), "module %s", module);
  d = gh__pl_find_key(server->pl, section, key, NULL);
  if (d == NULL || !type_fits(d->k.type, want) || (want != WANT_STRING && i != 0)) {
    ret = -EINVAL;
    goto out;
  }
  pthread_mutex_lock(&server->pl->lock);
  ret = lookup(d, key, NULL, server->pl->cfg->entries, server->pl->cfg->n, section, want, i, out);
  pthread_mutex_unlock(&server->pl->lock);
out:
  return ret;
}

int gh_module_server_get_config_bool(gh_module_server_t *server, const char *module,
                                     const char *key, bool *ret_value)
{
  return server_get(server, module, key, WANT_BOOL, 0, ret_value);
}

int gh_module_server_get_config_uint(gh_module_server_t *server, const char *module,
                                     const char *key, uint64_t *ret_value)
{
  return server_get(server, module, key, WANT_UINT, 0, ret_value);
}

int gh_module_server_get_config_string(gh_module_server_t *server, const char *module,
                                       const char *key, size_t i, const char **ret_value)
{
  return server_get(server, module, key, WANT_STRING, i, ret_value);
}
