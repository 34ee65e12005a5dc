/* soak_cgi.c: the soak's CGI script — prints the Uid/Gid/Groups/CapEff lines of its own /proc/self/status. */
#include <stdio.h>
#include <string.h>

int main(void)
{
  char line[4096];
  FILE *f = fopen("/proc/self/status", "r");

  fputs("Content-Type: text/plain\r\n\r\n", stdout);
  if (f == NULL)
    return 1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (strncmp(line, "Uid:", 4) == 0 || strncmp(line, "Gid:", 4) == 0 ||
        strncmp(line, "Groups:", 7) == 0 || strncmp(line, "CapEff:", 7) == 0)
      fputs(line, stdout);
  fclose(f);
  return 0;
}
