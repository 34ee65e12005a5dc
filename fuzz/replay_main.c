/* replay_main.c: runs a fuzz target over committed corpus files, TAP output. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
  FILE *f = fopen(path, "rbe");
  if (f == NULL)
    return -1;
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || st.st_size > (16 << 20)) {
    fclose(f);
    return -1;
  }
  size_t n = (size_t)st.st_size;
  uint8_t *buf = malloc(n ? n : 1);
  if (buf == NULL || fread(buf, 1, n, f) != n) {
    free(buf);
    fclose(f);
    return -1;
  }
  fclose(f);
  /* An exact-size heap copy lets ASan catch reads past the end. */
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
  return strcmp((*a)->d_name, (*b)->d_name);
}

/* One TAP case per corpus: "ok" when every input ran (a crash or sanitizer
 * report ends the process, which the runner counts as a failure), with the
 * unreadable inputs listed as diagnostics. */
int main(int argc, char **argv)
{
  int n_ok = 0, n_fail = 0;
  for (int i = 1; i < argc; i++) {
    struct dirent **list = NULL;
    int n = scandir(argv[i], &list, NULL, by_name);
    if (n < 0) {
      /* a single file */
      if (replay_file(argv[i]) == 0) {
        n_ok++;
      } else {
        printf("# unreadable: %s\n", argv[i]);
        n_fail++;
      }
      continue;
    }
    for (int j = 0; j < n; j++) {
      if (list[j]->d_name[0] != '.') {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", argv[i], list[j]->d_name);
        if (replay_file(path) == 0) {
          n_ok++;
        } else {
          printf("# unreadable: %s\n", path);
          n_fail++;
        }
      }
      free(list[j]);
    }
    free(list);
  }
  printf("1..1\n");
  if (n_ok == 0 || n_fail > 0) {
    printf("not ok 1 - %d inputs replayed, %d unreadable\n", n_ok, n_fail);
    return 1;
  }
  printf("ok 1 - %d inputs replayed\n", n_ok);
  return 0;
}
