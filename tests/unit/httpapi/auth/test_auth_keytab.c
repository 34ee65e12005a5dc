/* test_auth_keytab.c: the acceptor keys in memory — a changed keytab file merged (new kvno, a changed key under an old kvno), duplicates never added twice, re-reads gated by file changes, and an empty, garbage, missing or half-written file keeping every key (logged once). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <krb5.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_internal.h"

#define PRINC "HTTP/www.example.test@EXAMPLE.TEST"

typedef struct fixture {
  char dir[64], path[96];
  krb5_context k;
  unsigned n_log;
  char last_log[512];
} fixture_t;

static void capture(void *arg, int priority, const char *msg)
{
  fixture_t *f = arg;
  (void)priority;
  f->n_log++;
  snprintf(f->last_log, sizeof(f->last_log), "%s", msg);
}

/* Appends one random key (kvno, enctype) for PRINC to the keytab file. */
static void add_key(fixture_t *f, unsigned kvno, krb5_enctype etype)
{
  krb5_keytab kt;
  krb5_keytab_entry e;
  char name[128];

  memset(&e, 0, sizeof(e));
  snprintf(name, sizeof(name), "FILE:%s", f->path);
  assert_int_equal(krb5_kt_resolve(f->k, name, &kt), 0);
  assert_int_equal(krb5_parse_name(f->k, PRINC, &e.principal), 0);
  e.vno = kvno;
  assert_int_equal(krb5_c_make_random_key(f->k, etype, &e.key), 0);
  assert_int_equal(krb5_kt_add_entry(f->k, kt, &e), 0);
  krb5_free_principal(f->k, e.principal);
  krb5_free_keyblock_contents(f->k, &e.key);
  krb5_kt_close(f->k, kt);
}

static int setup(void **state)
{
  fixture_t *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/gh-kt-test-XXXXXX");
  if (!mkdtemp(f->dir) || krb5_init_context(&f->k) != 0)
    return -1;
  snprintf(f->path, sizeof(f->path), "%s/http.keytab", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  fixture_t *f = *state;
  unlink(f->path);
  rmdir(f->dir);
  krb5_free_context(f->k);
  free(f);
  return 0;
}

/* Whether the engine's MEMORY keytab holds PRINC at kvno. */
static bool holds(fixture_t *f, gh__auth_keytab_t *kt, unsigned kvno)
{
  krb5_keytab mem;
  krb5_principal p;
  krb5_keytab_entry e;
  bool found;

  assert_int_equal(krb5_kt_resolve(f->k, gh__auth_keytab_mem_name(kt), &mem), 0);
  assert_int_equal(krb5_parse_name(f->k, PRINC, &p), 0);
  found = krb5_kt_get_entry(f->k, mem, p, kvno, 0, &e) == 0;
  if (found)
    krb5_free_keytab_entry_contents(f->k, &e);
  krb5_free_principal(f->k, p);
  krb5_kt_close(f->k, mem);
  return found;
}

/* Rewrites the file's mtime a little later: the stat differs even within
 * one timestamp tick. */
static void touch_later(fixture_t *f)
{
  struct timespec ts[2] = { { 0, UTIME_OMIT }, { time(NULL) + 7, 0 } };
  assert_int_equal(utimensat(AT_FDCWD, f->path, ts, 0), 0);
}

static void test_new_kvno_merged_once(void **state)
{
  fixture_t *f = *state;
  gh__auth_keytab_t *kt = NULL;
  char msg[512];
  unsigned gen;

  add_key(f, 2, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  add_key(f, 2, ENCTYPE_AES128_CTS_HMAC_SHA1_96);
  assert_int_equal(gh__auth_keytab_new(f->path, capture, f, NULL, 0, &kt), 0);
  assert_true(holds(f, kt, 2));
  assert_false(holds(f, kt, 3));
  gen = gh__auth_keytab_gen(kt);
  /* unchanged file, read a moment ago: nothing to gain */
  assert_false(gh__auth_keytab_refresh(kt, gen));
  /* a new kvno appended: the refresh reads it at once */
  add_key(f, 3, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  assert_true(gh__auth_keytab_refresh(kt, gen));
  assert_true(holds(f, kt, 3) && holds(f, kt, 2));
  assert_string_equal(f->last_log + strlen(f->last_log) - strlen("3 held"), "3 held");
  assert_non_null(strstr(f->last_log, "1 new key (" PRINC " kvno 3)"));
  /* another thread that began before the read sees the keys as added */
  assert_true(gh__auth_keytab_refresh(kt, gen));
  /* SIGHUP on the same file: nothing new */
  assert_int_equal(gh__auth_keytab_reload(kt, msg, sizeof(msg)), 0);
  assert_non_null(strstr(msg, "re-read: no new keys, 3 held"));
  gh__auth_keytab_free(kt);
}

static void test_changed_key_same_kvno_added(void **state)
{
  fixture_t *f = *state;
  gh__auth_keytab_t *kt = NULL;
  char msg[512];

  add_key(f, 1, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  assert_int_equal(gh__auth_keytab_new(f->path, capture, f, NULL, 0, &kt), 0);
  /* a re-created account starts again at kvno 1 with another key */
  unlink(f->path);
  add_key(f, 1, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  assert_int_equal(gh__auth_keytab_reload(kt, msg, sizeof(msg)), 0);
  assert_non_null(strstr(msg, "1 new key (" PRINC " kvno 1), 2 held"));
  assert_int_equal(gh__auth_keytab_reload(kt, msg, sizeof(msg)), 0);
  assert_non_null(strstr(msg, "no new keys, 2 held"));
  gh__auth_keytab_free(kt);
}

static void test_bad_files_keep_the_keys(void **state)
{
  fixture_t *f = *state;
  gh__auth_keytab_t *kt = NULL;
  char msg[512];
  unsigned gen, logs;
  struct stat st;
  FILE *fp;

  add_key(f, 2, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  assert_int_equal(gh__auth_keytab_new(f->path, capture, f, NULL, 0, &kt), 0);
  gen = gh__auth_keytab_gen(kt);
  /* garbage */
  fp = fopen(f->path, "w");
  fputs("not a keytab at all", fp);
  fclose(fp);
  assert_int_equal(gh__auth_keytab_reload(kt, msg, sizeof(msg)), GH_ECONFIG);
  assert_non_null(strstr(msg, "not re-read: "));
  assert_non_null(strstr(msg, "keeping the 1 keys already loaded"));
  assert_true(holds(f, kt, 2));
  /* empty */
  fp = fopen(f->path, "w");
  fclose(fp);
  assert_int_equal(gh__auth_keytab_reload(kt, msg, sizeof(msg)), GH_ECONFIG);
  assert_non_null(strstr(msg, "the file is empty"));
  /* missing: a failing accept's refresh logs it once, however often it comes */
  unlink(f->path);
  logs = f->n_log;
  assert_false(gh__auth_keytab_refresh(kt, gen));
  assert_false(gh__auth_keytab_refresh(kt, gen));
  assert_int_equal(f->n_log, logs + 1);
  assert_non_null(strstr(f->last_log, "No such file or directory; keeping the 1 keys"));
  assert_true(holds(f, kt, 2));
  /* half-written: two new entries, the second cut short; the first is taken */
  add_key(f, 2, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  add_key(f, 3, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  add_key(f, 4, ENCTYPE_AES256_CTS_HMAC_SHA1_96);
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(truncate(f->path, st.st_size - 10), 0);
  touch_later(f);
  assert_true(gh__auth_keytab_refresh(kt, gen));
  assert_non_null(strstr(f->last_log, "its last entry is cut short"));
  assert_non_null(strstr(f->last_log, "the 2 complete entries before it were read"));
  assert_true(holds(f, kt, 3));
  assert_false(holds(f, kt, 4));
  assert_true(holds(f, kt, 2)); /* the old key (and the new kvno-2 key) */
  gh__auth_keytab_free(kt);
}

static void test_start_needs_a_keytab_with_keys(void **state)
{
  fixture_t *f = *state;
  gh__auth_keytab_t *kt = NULL;
  char err[256];
  FILE *fp;

  assert_int_equal(gh__auth_keytab_new(f->path, NULL, NULL, err, sizeof(err), &kt), GH_ECONFIG);
  assert_null(kt);
  assert_non_null(strstr(err, "No such file or directory"));
  assert_non_null(strstr(err, f->path));
  fp = fopen(f->path, "w");
  fwrite("\x05\x02", 1, 2, fp);
  fclose(fp);
  assert_int_equal(gh__auth_keytab_new(f->path, NULL, NULL, err, sizeof(err), &kt), GH_ECONFIG);
  assert_non_null(strstr(err, "no keys in it"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_new_kvno_merged_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_changed_key_same_kvno_added, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_files_keep_the_keys, setup, teardown),
    cmocka_unit_test_setup_teardown(test_start_needs_a_keytab_with_keys, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
