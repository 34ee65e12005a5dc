/* mod_noabi.c: a test module without the ABI record (must be refused at load). */
#include <gatehouse/module.h>

GH_MODULE_EXPORT int gh_register_module(uint32_t v, gh_module_registration_t *r,
                                        gh_module_server_t *s)
{
  (void)v;
  (void)r;
  (void)s;
  return 0;
}
