/* test_impersonate_stress.c: 8 threads x 4 users x 20,000 random impersonate/check/revert cycles against a permission matrix. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "sec_fixture.h"

#define NTHREADS 8
#define DEFAULT_CYCLES 20000 /* per thread and user */

enum { NUSERS = 4 };
static const char *const user_names[NUSERS] = {"alice", "bob", "carol", "dave"};
static const uid_t user_uids[NUSERS] = {U_ALICE, U_BOB, U_CAROL, U_DAVE};
static gh_token_t tok[NUSERS];

typedef struct fx_file {
  const char *name;
  uid_t uid;
  gid_t gid;
  mode_t mode;
  bool readable[NUSERS];
  bool writable[NUSERS];
} fx_file_t;

static const fx_file_t files[] = {
    {"a", U_ALICE, G_ALICE, 0600, {1, 0, 0, 0}, {1, 0, 0, 0}},
    {"b", U_BOB, G_BOB, 0600, {0, 1, 0, 0}, {0, 1, 0, 0}},
    {"s", U_BOB, G_SHARED, 0660, {1, 1, 1, 0}, {1, 1, 1, 0}},
    {"p", U_DAVE, G_PROJ, 0640, {0, 1, 1, 1}, {0, 0, 0, 1}},
    {"d", U_CAROL, G_CAROL, 0604, {1, 1, 1, 1}, {0, 0, 1, 0}},
    {"n", U_DAVE, G_SHARED, 0604, {0, 1, 0, 1}, {0, 0, 0, 1}},
    {"x", 0, 0, 0600, {0, 0, 0, 0}, {0, 0, 0, 0}},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static char paths[NFILES][320];
static atomic_long mismatches, checks;
static long cycles = DEFAULT_CYCLES;

static uint64_t next_rand(uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* One check as user u: kernel answer vs the matrix. */
static void check_as(int u, uint64_t *rng)
{
  size_t f = next_rand(rng) % NFILES;
  uid_t r, e, s;
  int got, want;

  if (getresuid(&r, &e, &s) != 0 || e != user_uids[u] || r != 0 || s != 0)
    atomic_fetch_add(&mismatches, 1);
  if (next_rand(rng) & 1) {
    int fd = open(paths[f], O_RDONLY | O_CLOEXEC);
    got = fd >= 0 ? 0 : errno;
    if (fd >= 0)
      close(fd);
    want = files[f].readable[u] ? 0 : EACCES;
  } else {
    got = faccessat(AT_FDCWD, paths[f], W_OK, AT_EACCESS) == 0 ? 0 : errno;
    want = files[f].writable[u] ? 0 : EACCES;
  }
  if (got != want)
    atomic_fetch_add(&mismatches, 1);
  atomic_fetch_add_explicit(&checks, 1, memory_order_relaxed);
}

static void *worker(void *arg)
{
  uintptr_t idx = (uintptr_t)arg;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (idx + 1);
  bool nested = idx % 2 == 1;
  int order[NUSERS] = {0, 1, 2, 3};

  if (nested && gh_impersonate_set_mode(GH_IMPERSONATE_NESTED) != 0)
    atomic_fetch_add(&mismatches, 1);
  for (long i = 0; i < cycles; i++) {
    for (int k = NUSERS - 1; k > 0; k--) { /* shuffle the users */
      int j = (int)(next_rand(&rng) % (uint64_t)(k + 1)), t = order[k];
      order[k] = order[j];
      order[j] = t;
    }
    for (int k = 0; k < NUSERS; k++) {
      int u = order[k];
      if (gh_impersonate(tok[u]) != 0) {
        atomic_fetch_add(&mismatches, 1);
        continue;
      }
      check_as(u, &rng);
      if (nested && (next_rand(&rng) & 3) == 0) {
        int v = (int)(next_rand(&rng) % NUSERS);
        if (gh_impersonate(tok[v]) != 0) {
          atomic_fetch_add(&mismatches, 1);
        } else {
          check_as(v, &rng);
          gh_revert();
        }
        check_as(u, &rng); /* the outer client is back */
      } else if ((next_rand(&rng) & 15) == 0) {
        /* an access check for another token leaves us as u */
        int v = (int)(next_rand(&rng) % NUSERS);
        size_t f = next_rand(&rng) % NFILES;
        int rc = gh_token_access_check(tok[v], paths[f], R_OK);
        if (rc != (files[f].readable[v] ? 0 : -EACCES))
          atomic_fetch_add(&mismatches, 1);
        check_as(u, &rng);
      }
      gh_revert();
      if (gh_is_impersonating())
        atomic_fetch_add(&mismatches, 1);
    }
  }
  gh_assert_base();
  return NULL;
}

static void test_stress_matrix(void **state)
{
  (void)state;
  pthread_t th[NTHREADS];
  struct timespec t0, t1;
  int fd;

  if (!fx_root()) {
    printf("# skip: the stress test needs root (kernel enforcement)\n");
    skip();
  }
  char dir[300];
  snprintf(dir, sizeof(dir), "%s/stress", fx_dir());
  assert_int_equal(mkdir(dir, 0755), 0);
  for (size_t f = 0; f < NFILES; f++) {
    snprintf(paths[f], sizeof(paths[f]), "%s/%s", dir, files[f].name);
    fd = open(paths[f], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, files[f].uid, files[f].gid), 0);
    assert_int_equal(fchmod(fd, files[f].mode), 0);
    close(fd);
  }
  for (int u = 0; u < NUSERS; u++)
    assert_int_equal(gh_token_from_user(user_names[u], NULL, &tok[u]), 0);

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uintptr_t i = 0; i < NTHREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)i), 0);
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);

  printf("# %d threads x %d users x %ld cycles: %ld kernel checks, %ld mismatches, %.1f s\n",
         NTHREADS, NUSERS, cycles, atomic_load(&checks), atomic_load(&mismatches),
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  assert_int_equal(atomic_load(&mismatches), 0);
  assert_true(atomic_load(&checks) >= (long)NTHREADS * NUSERS * cycles);
  for (int u = 0; u < NUSERS; u++)
    assert_int_equal(gh_token_close(tok[u]), 0);
  gh_assert_base();
}

int main(int argc, char **argv)
{
  fx_init(argc, argv);
  const char *c = getenv("GH_STRESS_CYCLES");
  if (c != NULL)
    cycles = atol(c);
  if (gh_sec_init(NULL) != 0) {
    fprintf(stderr, "gh_sec_init failed\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stress_matrix),
  };
  return cmocka_run_group_tests_name("sec_impersonate_stress", tests, NULL, NULL);
}
