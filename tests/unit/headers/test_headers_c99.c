/* test_headers_c99.c: every public header as strict C99 (-pedantic-errors), linked. */
#include <gatehouse/gatehouse.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
  int fails = 0;
  fails += strcmp(gh_err_name(GH_ESTATE), "GH_ESTATE") != 0;
  fails += gh_token_is_borrowed(GH_TOKEN_NULL);
  printf("1..1\n%s 1 - every public header compiles as C99 with -pedantic-errors\n",
         fails ? "not ok" : "ok");
  return fails != 0;
}
