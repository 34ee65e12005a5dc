/* mod_badabi.c: a test module built for another ABI version (must be refused at load). */
#include <gatehouse/module.h>

__attribute__((visibility("default"))) const gh_module_abi_t gh_module_abi = {
    999, GH_MODULE_SIGNATURE, "badabi"};

GH_MODULE_EXPORT int gh_register_module(uint32_t v, gh_module_registration_t *r,
                                        gh_module_server_t *s)
{
  (void)v;
  (void)r;
  (void)s;
  return 0;
}
