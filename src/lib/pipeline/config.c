/* config.c: gh_pipeline_config_t, the ordered (section, key, value) list modules read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"
#include "util/alloc.h"

int gh_pipeline_config_new(gh_pipeline_config_t **ret_config)
{
  int ret = 0;
  gh_pipeline_config_t *cfg = gh__calloc(1, sizeof(*cfg));
  if (cfg == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  *ret_config = cfg;
out:
  return ret;
}

void gh__pl_site_data_free(gh__pl_site_data_t *d)
{
  while (d != NULL) {
    gh__pl_site_data_t *next = d->next;
    if (d->free_cb != NULL)
      d->free_cb(d->data);
    free(d);
    d = next;
  }
}

void gh__pl_config_free_site_data(gh_pipeline_config_t *cfg)
{
  for (; cfg != NULL; cfg = cfg->older)
    for (size_t i = 0; i < cfg->n_sites; i++)
      gh__pl_site_data_free(atomic_exchange(&cfg->sites[i].data, NULL));
}

void gh_pipeline_config_free(gh_pipeline_config_t *cfg)
{
  gh__pl_config_free_site_data(cfg);
  while (cfg != NULL) {
    gh_pipeline_config_t *older = cfg->older;
    for (size_t i = 0; i < cfg->n; i++) {
      free(cfg->entries[i].section);
      free(cfg->entries[i].key);
      free(cfg->entries[i].value);
      free(cfg->entries[i].file);
      gh__pl_value_done(&cfg->entries[i].v);
    }
    for (size_t i = 0; i < cfg->n_sites; i++)
      free(cfg->sites[i].items);
    free(cfg->sites);
    free(cfg->entries);
    free(cfg);
    cfg = older;
  }
}

int gh_pipeline_config_add(gh_pipeline_config_t *cfg, const char *section, const char *key,
                           const char *value)
{
  return gh_pipeline_config_add_at(cfg, section, key, value, NULL, 0, GH_PIPELINE_CONFIG_HOST);
}

int gh_pipeline_config_add_at(gh_pipeline_config_t *cfg, const char *section, const char *key,
                              const char *value, const char *file, unsigned line, unsigned flags)
{
  int ret = 0;
  gh__pl_entry_t e = {0};
  if (cfg == NULL || section == NULL || (key != NULL && value == NULL) || cfg->sites != NULL ||
      (flags & ~GH_PIPELINE_CONFIG_HOST) != 0) {
    ret = -EINVAL;
    goto out;
  }
  if (cfg->n == cfg->cap) {
    size_t cap = cfg->cap ? cfg->cap * 2 : 16;
    gh__pl_entry_t *n = gh__realloc(cfg->entries, cap * sizeof(*n));
    if (n == NULL) {
      ret = -ENOMEM;
      goto out;
    }
    cfg->entries = n;
    cfg->cap = cap;
  }
  e.section = gh__strdup(section);
  e.key = key ? gh__strdup(key) : NULL;
  e.value = value ? gh__strdup(value) : NULL;
  e.file = file ? gh__strdup(file) : NULL;
  e.line = line;
  e.host = (flags & GH_PIPELINE_CONFIG_HOST) != 0;
  if (e.section == NULL || (key && e.key == NULL) || (value && e.value == NULL) ||
      (file && e.file == NULL)) {
    free(e.section);
    free(e.key);
    free(e.value);
    free(e.file);
    ret = -ENOMEM;
    goto out;
  }
  cfg->entries[cfg->n++] = e;
out:
  return ret;
}

const char *gh__pl_config_get(const gh_pipeline_config_t *cfg, const char *section,
                              const char *key, size_t nth_or_last)
{
  const char *found = NULL;
  size_t seen = 0;
  if (cfg == NULL || section == NULL || key == NULL)
    goto out;
  for (size_t i = 0; i < cfg->n; i++) {
    const gh__pl_entry_t *e = &cfg->entries[i];
    if (e->key == NULL || strcmp(e->section, section) != 0 || strcmp(e->key, key) != 0)
      continue;
    if (nth_or_last == GH__PL_LAST) {
      found = e->value;
    } else if (seen++ == nth_or_last) {
      found = e->value;
      break;
    }
  }
out:
  return found;
}

bool gh__pl_word_true(const char *v)
{
  return v != NULL && (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
                       strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0);
}

int gh__pl_config_index(gh_pipeline_config_t *cfg)
{
  int ret = 0;
  gh__pl_site_t *sites = NULL;
  size_t n_sites = 0;
  if (cfg->sites != NULL)
    goto out;
  /* at most one site per entry; the array is exact-sized below */
  sites = gh__calloc(cfg->n + 1, sizeof(*sites));
  if (sites == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < cfg->n; i++) {
    const gh__pl_entry_t *e = &cfg->entries[i];
    gh__pl_site_t *s = NULL;
    if (strncmp(e->section, "site ", 5) != 0)
      continue;
    for (size_t k = 0; k < n_sites && s == NULL; k++)
      if (strcmp(sites[k].section, e->section) == 0)
        s = &sites[k];
    if (s == NULL) {
      s = &sites[n_sites++];
      s->section = e->section;
    }
    if (e->key == NULL)
      continue;
    if (s->items == NULL) {
      /* sized for every entry of this section */
      size_t count = 0;
      for (size_t j = i; j < cfg->n; j++)
        if (cfg->entries[j].key != NULL && strcmp(cfg->entries[j].section, e->section) == 0)
          count++;
      s->items = gh__calloc(count, sizeof(*s->items));
      if (s->items == NULL) {
        ret = -ENOMEM;
        goto out;
      }
    }
    s->items[s->n_items++] = e;
    if (strcmp(e->key, "handler") == 0)
      s->handler = e->value;
    else if (strcmp(e->key, "impersonate") == 0)
      s->impersonate = gh__pl_word_true(e->value);
  }
  cfg->sites = sites;
  cfg->n_sites = n_sites;
  sites = NULL;
out:
  if (sites != NULL) {
    for (size_t k = 0; k < n_sites; k++)
      free(sites[k].items);
    free(sites);
  }
  return ret;
}

const gh__pl_site_t *gh__pl_config_site(const gh_pipeline_config_t *cfg,
                                        const char *site_or_section)
{
  const gh__pl_site_t *found = NULL;
  const char *path = site_or_section;
  if (cfg == NULL || cfg->sites == NULL || path == NULL)
    goto out;
  /* (strncmp's test without its call: most callers pass the path) */
  if (path[0] == 's' && path[1] == 'i' && path[2] == 't' && path[3] == 'e' && path[4] == ' ')
    path += 5;
  for (size_t i = 0; i < cfg->n_sites; i++) {
    if (strcmp(cfg->sites[i].section + 5, path) == 0) {
      found = &cfg->sites[i];
      break;
    }
  }
out:
  return found;
}

const char *gh__pl_site_get(const gh__pl_site_t *site, const char *key, size_t nth_or_last)
{
  const char *found = NULL;
  if (site == NULL || key == NULL)
    goto out;
  if (nth_or_last == GH__PL_LAST) {
    for (size_t i = site->n_items; i > 0; i--) {
      if (strcmp(site->items[i - 1]->key, key) == 0) {
        found = site->items[i - 1]->value;
        break;
      }
    }
  } else {
    size_t seen = 0;
    for (size_t i = 0; i < site->n_items; i++) {
      if (strcmp(site->items[i]->key, key) == 0 && seen++ == nth_or_last) {
        found = site->items[i]->value;
        break;
      }
    }
  }
out:
  return found;
}

static gh__pl_site_data_t *site_data_find(gh__pl_site_data_t *d, int id)
{
  while (d != NULL && d->id != id)
    d = d->next;
  return d;
}

/* Links node (built data) into the site's list, unless another thread got
 * there first: then node is freed and the data already there returned. */
static void *site_data_publish(gh__pl_site_t *site, gh__pl_site_data_t *node)
{
  gh__pl_site_data_t *head = atomic_load_explicit(&site->data, memory_order_acquire), *found;
  do {
    found = site_data_find(head, node->id);
    if (found != NULL) {
      node->next = NULL;
      gh__pl_site_data_free(node);
      return found->data;
    }
    node->next = head;
  } while (!atomic_compare_exchange_weak_explicit(&site->data, &head, node, memory_order_acq_rel,
                                                  memory_order_acquire));
  return node->data;
}

/* gh_http_context_get_site_data's first request for a site: builds the data
 * and links it (or, without an indexed site, keeps it for this request).
 * Out of line, so that the usual call (found) saves no registers. */
static __attribute__((noinline)) int site_data_build(gh_http_context_t *ctx, int id,
                                                     gh_site_data_build_cb build,
                                                     gh_site_data_free_cb free_cb, void **ret_data)
{
  /* the index is read-only once installed, but for this list */
  gh__pl_site_t *site = (gh__pl_site_t *)ctx->site;
  gh__pl_site_data_t *node = gh__calloc(1, sizeof(*node));
  void *data = NULL;
  int ret = 0;
  if (node == NULL) {
    ret = -ENOMEM;
    goto out;
  }
  ret = build(ctx, &data);
  if (ret < 0)
    goto out; /* nothing kept: the next request builds again */
  node->id = id;
  node->data = data;
  node->free_cb = free_cb;
  if (site != NULL) {
    data = site_data_publish(site, node);
  } else {
    node->next = ctx->site_data; /* no indexed site: this request's own */
    ctx->site_data = node;
  }
  node = NULL;
  *ret_data = data;
out:
  free(node);
  return ret;
}

int gh_http_context_get_site_data(gh_http_context_t *ctx, int id, gh_site_data_build_cb build,
                                  gh_site_data_free_cb free_cb, void **ret_data)
{
  gh__pl_site_data_t *found;
  int ret = 0;
  if (ctx == NULL || build == NULL || ret_data == NULL || id < 0 ||
      (size_t)id >= ctx->pl->n_modules) {
    ret = -EINVAL;
    goto out;
  }
  found =
      site_data_find(ctx->site != NULL ? atomic_load_explicit(&((gh__pl_site_t *)ctx->site)->data,
                                                              memory_order_acquire)
                                       : ctx->site_data,
                     id);
  if (found != NULL)
    *ret_data = found->data; /* every request but the site's first */
  else
    ret = site_data_build(ctx, id, build, free_cb, ret_data);
out:
  return ret;
}
