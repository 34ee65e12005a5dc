/* config.c: gh_pipeline_config_t, the ordered (section, key, value) list modules read. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

void gh_pipeline_config_free(gh_pipeline_config_t *cfg)
{
  while (cfg != NULL) {
    gh_pipeline_config_t *older = cfg->older;
    for (size_t i = 0; i < cfg->n; i++) {
      free(cfg->entries[i].section);
      free(cfg->entries[i].key);
      free(cfg->entries[i].value);
    }
    free(cfg->entries);
    free(cfg);
    cfg = older;
  }
}

int gh_pipeline_config_add(gh_pipeline_config_t *cfg, const char *section, const char *key,
                           const char *value)
{
  int ret = 0;
  gh__pl_entry_t e = {0};
  if (cfg == NULL || section == NULL || (key != NULL && value == NULL)) {
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
  if (e.section == NULL || (key && e.key == NULL) || (value && e.value == NULL)) {
    free(e.section);
    free(e.key);
    free(e.value);
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
