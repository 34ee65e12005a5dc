/* test_headers_cxx.cc: a C++ program including every public header links to libgatehouse. */
#include <gatehouse/gatehouse.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/common.h>
#include <gatehouse/error.h>
#include <gatehouse/httpapi.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/module.h>
#include <gatehouse/token.h>

#include <cstdio>
#include <cstring>

/* Each call below is a symbol from one header: without extern "C" the
 * linker looks for a C++-mangled name and the program does not link. */
int main()
{
  int fails = 0;
  gh_server_config_t cfg;
  gh_pipeline_t *pl = nullptr;
  gh_server_config_init(&cfg);                                               /* httpapi.h */
  fails += std::strcmp(gh_strerror(GH_ESTATE), "") == 0;                     /* error.h */
  fails += gh_token_is_borrowed(GH_TOKEN_NULL);                              /* token.h */
  fails += gh_is_impersonating();                                            /* impersonate.h */
  fails += std::strcmp(gh_auth_type_name(GH_AUTH_TYPE_BASIC), "Basic") != 0; /* authinfo.h */
  fails += gh_pipeline_new(&pl) != 0;                                        /* module.h */
  gh_pipeline_free(pl);
  fails += std::strcmp(GH_VERSION_STRING, "") == 0; /* common.h */
  std::printf("1..1\n%s 1 - a C++ program includes every public header and links (%s)\n",
              fails ? "not ok" : "ok", GH_MODULE_SIGNATURE);
  return fails != 0;
}
