/* compat_abi20.c: the registration calls of the ABI 2.0 header, for modules built against it. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <gatehouse/error.h>
#include <gatehouse/module.h>

#include "pipeline/pipeline_int.h"

/*
 * Modules built against the first ABI 2 header (before issue 13) laid their
 * request callbacks out in two arrays indexed by gh_notification_t, in the
 * middle of gh_module_factory_t, and named the notifications they wanted in
 * masks. Those structs could not grow, so the header now has the named,
 * tail-growing structs of gh_module_registration_set_factory and
 * gh_module_registration_set_global. The two calls below are what those
 * binaries were linked with: they are no longer declared in module.h, read
 * the old layouts (copied here from that header, never to change), and hand
 * the callbacks the masks select to the current calls. A mask bit without
 * its callback, or a post bit for an event without a post event, is -EINVAL
 * as it was.
 */

#define ABI20_NOTIFY_COUNT 15 /* GH_NOTIFY_COUNT_ of that header */
#define ABI20_GLOBAL_COUNT 3  /* GH_GLOBAL_COUNT_ of that header */

typedef struct abi20_factory {
  size_t struct_size;
  int (*create)(void *factory_data, gh_http_context_t *ctx, void **ret_module);
  void (*dispose)(void *factory_data, void *module);
  void (*terminate)(void *factory_data);
  gh_module_request_cb on_request[ABI20_NOTIFY_COUNT];
  gh_module_request_cb on_post_request[ABI20_NOTIFY_COUNT];
  void *factory_data;
} abi20_factory_t;

typedef struct abi20_global {
  size_t struct_size;
  gh_global_cb on_global[ABI20_GLOBAL_COUNT];
  void (*terminate)(void *global_data);
  void *global_data;
} abi20_global_t;

/* the enums of that header are the first values of today's */
_Static_assert(GH_NOTIFY_MAP_PATH == ABI20_NOTIFY_COUNT - 1, "notification numbers moved");
_Static_assert(GH_GLOBAL_CONFIG_RELOAD == ABI20_GLOBAL_COUNT - 1, "global numbers moved");

GH_EXPORT int gh_module_registration_set_request_notifications(gh_module_registration_t *reg,
                                                               const abi20_factory_t *factory,
                                                               uint32_t request_mask,
                                                               uint32_t post_mask);
GH_EXPORT int gh_module_registration_set_global_notifications(gh_module_registration_t *reg,
                                                              const abi20_global_t *global,
                                                              uint32_t mask);

#define ALL_BITS ((1u << ABI20_NOTIFY_COUNT) - 1u)
#define NO_POST_BITS                                                                               \
  (GH_NOTIFY_BIT(GH_NOTIFY_SEND_RESPONSE) | GH_NOTIFY_BIT(GH_NOTIFY_READ_ENTITY) |                 \
   GH_NOTIFY_BIT(GH_NOTIFY_MAP_PATH))

int gh_module_registration_set_request_notifications(gh_module_registration_t *reg,
                                                     const abi20_factory_t *factory,
                                                     uint32_t request_mask, uint32_t post_mask)
{
  int ret = 0;
  gh_module_factory_t f;
  if (reg == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (factory == NULL || factory->struct_size < sizeof(abi20_factory_t) ||
      (request_mask & ~ALL_BITS) != 0 || (post_mask & ~ALL_BITS) != 0 ||
      (post_mask & NO_POST_BITS) != 0 || (request_mask | post_mask) == 0) {
    ret = gh__pl_reg_fail(reg, -EINVAL,
                          "gh_module_registration_set_request_notifications "
                          "(ABI 2.0): bad factory or masks 0x%x/0x%x",
                          (unsigned)request_mask, (unsigned)post_mask);
    goto out;
  }
  memset(&f, 0, sizeof(f));
  f.struct_size = sizeof(f);
  f.factory_data = factory->factory_data;
  f.create = factory->create;
  f.dispose = factory->dispose;
  f.terminate = factory->terminate;
  for (int n = 0; n < ABI20_NOTIFY_COUNT; n++) {
    gh_module_request_cb pre = factory->on_request[n], post = factory->on_post_request[n];
    if (((request_mask & GH_NOTIFY_BIT(n)) && pre == NULL) ||
        ((post_mask & GH_NOTIFY_BIT(n)) && post == NULL)) {
      ret = gh__pl_reg_fail(reg, -EINVAL,
                            "gh_module_registration_set_request_notifications "
                            "(ABI 2.0): notification %d is in a mask without its callback",
                            n);
      goto out;
    }
    if (request_mask & GH_NOTIFY_BIT(n))
      *gh__pl_factory_slot(&f, (gh_notification_t)n, false) = pre;
    if (post_mask & GH_NOTIFY_BIT(n))
      *gh__pl_factory_slot(&f, (gh_notification_t)n, true) = post;
  }
  ret = gh_module_registration_set_factory(reg, &f);
out:
  return ret;
}

int gh_module_registration_set_global_notifications(gh_module_registration_t *reg,
                                                    const abi20_global_t *global, uint32_t mask)
{
  int ret = 0;
  gh_global_module_t g;
  gh_global_cb *slot[ABI20_GLOBAL_COUNT] = {&g.on_start, &g.on_stop, &g.on_config_reload};
  if (reg == NULL) {
    ret = -EINVAL;
    goto out;
  }
  if (global == NULL || global->struct_size < sizeof(abi20_global_t) || mask == 0 ||
      (mask & ~((1u << ABI20_GLOBAL_COUNT) - 1u)) != 0) {
    ret = gh__pl_reg_fail(reg, -EINVAL,
                          "gh_module_registration_set_global_notifications "
                          "(ABI 2.0): bad struct or mask 0x%x",
                          (unsigned)mask);
    goto out;
  }
  memset(&g, 0, sizeof(g));
  g.struct_size = sizeof(g);
  g.global_data = global->global_data;
  g.terminate = global->terminate;
  for (int n = 0; n < ABI20_GLOBAL_COUNT; n++) {
    if (!(mask & (1u << n)))
      continue;
    if (global->on_global[n] == NULL) {
      ret = gh__pl_reg_fail(reg, -EINVAL,
                            "gh_module_registration_set_global_notifications "
                            "(ABI 2.0): global notification %d has no callback",
                            n);
      goto out;
    }
    *slot[n] = global->on_global[n];
  }
  ret = gh_module_registration_set_global(reg, &g);
out:
  return ret;
}
