/* main.c: gatehoused entry point (placeholder until the HTTP core lands). */
#include <stdio.h>

#include <gatehouse/error.h>

int main(void)
{
  fprintf(stderr, "gatehoused: %s\n", gh_strerror(GH_EUNSUPPORTED));
  return 1;
}
