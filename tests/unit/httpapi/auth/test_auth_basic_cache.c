/* test_auth_basic_cache.c: unit tests for the Basic success cache (salted hash, TTL, collisions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"

static void test_ttl(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(16, 30, NULL);
  (void)state;
  assert_non_null(c);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1000, NULL));
  gh__auth_basic_cache_insert(c, "alice", "pw", 1000, 0);
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 1000, NULL));
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 1029, NULL));
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1030, NULL));
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 5000, NULL));
  gh__auth_basic_cache_free(c);
}

static void test_keys(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(1024, 30, NULL);
  (void)state;
  gh__auth_basic_cache_insert(c, "alice", "pw", 10, 0);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pW", 10, NULL));
  assert_false(gh__auth_basic_cache_lookup(c, "alicep", "w", 10, NULL)); /* no user/password smearing */
  assert_false(gh__auth_basic_cache_lookup(c, "bob", "pw", 10, NULL));
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 10, NULL));
  gh__auth_basic_cache_free(c);
}

static void test_disabled_and_collisions(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(0, 0, NULL);
  char u[16];
  (void)state;
  gh__auth_basic_cache_insert(c, "alice", "pw", 10, 0);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 10, NULL));
  gh__auth_basic_cache_free(c);
  /* one slot: a newer entry evicts, never confuses */
  c = gh__auth_basic_cache_new(1, 30, NULL);
  for (int i = 0; i < 10; i++) {
    snprintf(u, sizeof(u), "u%d", i);
    gh__auth_basic_cache_insert(c, u, "pw", 10, 0);
  }
  assert_true(gh__auth_basic_cache_lookup(c, "u9", "pw", 10, NULL));
  assert_false(gh__auth_basic_cache_lookup(c, "u0", "pw", 10, NULL));
  gh__auth_basic_cache_free(c);
  gh__auth_basic_cache_free(NULL);
}

/* ---- tokens in entries, with a fake handle table ----
 * A handle is a serial number (never reused); each open handle counts one
 * reference on its token (ft_tok[h]); a token is "destroyed" when its count
 * drops to 0. TOK(h) is the token behind a handle. */
#define FT_MAX 64
#define FT_HANDLES (1 << 16)
static int ft_refs[FT_MAX];        /* references per token */
static int ft_tok[FT_HANDLES];     /* per handle: its token */
static char ft_open[FT_HANDLES];   /* per handle: 1 while open */
static unsigned ft_serial;
#define TOK(h) (ft_tok[(h)])

static gh_token_t ft_new(int tok)
{
  gh_token_t h = ++ft_serial;
  assert_true(h < FT_HANDLES);
  ft_tok[h] = tok;
  ft_refs[tok]++;
  ft_open[h] = 1;
  return h;
}

static int ft_open_handle(gh_token_t t, gh_token_t *ret)
{
  if (t >= FT_HANDLES || !ft_open[t])
    return GH_EINVALID_HANDLE;
  *ret = ft_new(ft_tok[t]);
  return 0;
}

static int ft_close(gh_token_t t)
{
  if (t >= FT_HANDLES || !ft_open[t])
    return GH_EINVALID_HANDLE;
  ft_open[t] = 0;
  ft_refs[ft_tok[t]]--;
  return 0;
}

static const gh__auth_token_ops_t ft_ops = { .open_handle = ft_open_handle, .close = ft_close };

static void ft_reset(void)
{
  memset(ft_refs, 0, sizeof(ft_refs));
  memset(ft_open, 0, sizeof(ft_open));
  memset(ft_tok, 0, sizeof(ft_tok));
  ft_serial = 0;
}

/* hit: a new owned handle to the same token; closing it keeps the cached one */
static void test_token_hit(void **state)
{
  gh__auth_basic_cache_t *c;
  gh_token_t t = 0, h1 = 0, h2 = 0;
  (void)state;
  ft_reset();
  c = gh__auth_basic_cache_new(64, 30, &ft_ops);
  assert_non_null(c);
  t = ft_new(1); /* the caller's token from the PAM success */
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 100, &h1));
  assert_int_equal(h1, 0);
  gh__auth_basic_cache_insert(c, "alice", "pw", 100, t);
  assert_int_equal(ft_refs[1], 2); /* caller + cache */
  ft_close(t);                      /* the request ends */
  assert_int_equal(ft_refs[1], 1);
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 110, &h1));
  assert_int_not_equal(h1, 0);
  assert_int_equal(TOK(h1), 1); /* the same token */
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 111, &h2));
  assert_int_not_equal(h1, h2); /* a handle per request */
  assert_int_equal(ft_close(h1), 0);
  assert_int_equal(ft_close(h2), 0);
  assert_int_equal(ft_close(h1), GH_EINVALID_HANDLE);
  assert_int_equal(ft_refs[1], 1); /* the cache's own handle survives */
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 112, &h1));
  ft_close(h1);
  /* a lookup without ret_token opens nothing */
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 112, NULL));
  assert_int_equal(ft_refs[1], 1);
  gh__auth_basic_cache_free(c);
  assert_int_equal(ft_refs[1], 0); /* freeing the cache closes its handle */
}

/* a wrong password, another user, a smeared split: never the cached token */
static void test_token_wrong_password(void **state)
{
  gh__auth_basic_cache_t *c;
  gh_token_t t, h = 0;
  (void)state;
  ft_reset();
  c = gh__auth_basic_cache_new(1, 30, &ft_ops); /* one slot: every key collides */
  t = ft_new(2);
  gh__auth_basic_cache_insert(c, "alice", "pw", 100, t);
  ft_close(t);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pW", 100, &h));
  assert_int_equal(h, 0);
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw ", 100, &h));
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "", 100, &h));
  assert_false(gh__auth_basic_cache_lookup(c, "alicep", "w", 100, &h));
  assert_false(gh__auth_basic_cache_lookup(c, "bob", "pw", 100, &h));
  assert_int_equal(h, 0);
  assert_int_equal(ft_refs[2], 1);
  /* the right one still hits */
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 100, &h));
  assert_int_equal(TOK(h), 2);
  ft_close(h);
  gh__auth_basic_cache_free(c);
  assert_int_equal(ft_refs[2], 0);
}

/* TTL: runs from the insert, a hit never extends it; expiry drops the token */
static void test_token_ttl(void **state)
{
  gh__auth_basic_cache_t *c;
  gh_token_t t, h = 0;
  (void)state;
  ft_reset();
  c = gh__auth_basic_cache_new(16, 30, &ft_ops);
  t = ft_new(3);
  gh__auth_basic_cache_insert(c, "alice", "pw", 1000, t);
  ft_close(t);
  for (time_t now = 1000; now < 1030; now += 5) {
    assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", now, &h));
    ft_close(h);
  }
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1030, &h));
  assert_int_equal(h, 0);
  assert_int_equal(ft_refs[3], 0); /* the expired entry let its token go */
  assert_false(gh__auth_basic_cache_lookup(c, "alice", "pw", 1031, &h));
  gh__auth_basic_cache_free(c);
}

/* bounded: n slots, a newer entry evicts (and closes) the older one */
static void test_token_bounded(void **state)
{
  gh__auth_basic_cache_t *c;
  gh_token_t h = 0;
  char u[16];
  int live = 0;
  (void)state;
  ft_reset();
  c = gh__auth_basic_cache_new(4, 30, &ft_ops);
  for (int i = 0; i < 40; i++) {
    gh_token_t t = ft_new(10 + i);
    snprintf(u, sizeof(u), "u%d", i);
    gh__auth_basic_cache_insert(c, u, "pw", 10, t);
    ft_close(t);
  }
  for (int i = 0; i < 40; i++)
    live += ft_refs[10 + i];
  assert_true(live >= 1 && live <= 4); /* never more tokens than slots */
  assert_true(gh__auth_basic_cache_lookup(c, "u39", "pw", 10, &h));
  assert_int_equal(TOK(h), 10 + 39);
  ft_close(h);
  /* a re-insert of the same key (a new PAM success) replaces the token */
  {
    gh_token_t t = ft_new(60);
    gh__auth_basic_cache_insert(c, "u39", "pw", 20, t);
    ft_close(t);
  }
  assert_int_equal(ft_refs[10 + 39], 0);
  assert_true(gh__auth_basic_cache_lookup(c, "u39", "pw", 20, &h));
  assert_int_equal(TOK(h), 60);
  ft_close(h);
  gh__auth_basic_cache_free(c);
  for (int i = 0; i < FT_MAX; i++)
    assert_int_equal(ft_refs[i], 0);
}

/* no token given (unmapped user) or no ops: a hit without a token */
static void test_token_none(void **state)
{
  gh__auth_basic_cache_t *c;
  gh_token_t h = 99, t;
  (void)state;
  ft_reset();
  c = gh__auth_basic_cache_new(16, 30, &ft_ops);
  gh__auth_basic_cache_insert(c, "nobody-mapped", "pw", 10, 0);
  assert_true(gh__auth_basic_cache_lookup(c, "nobody-mapped", "pw", 10, &h));
  assert_int_equal(h, 0);
  gh__auth_basic_cache_free(c);
  c = gh__auth_basic_cache_new(16, 30, NULL);
  t = ft_new(5);
  gh__auth_basic_cache_insert(c, "alice", "pw", 10, t);
  assert_int_equal(ft_refs[5], 1); /* not kept without ops */
  h = 99;
  assert_true(gh__auth_basic_cache_lookup(c, "alice", "pw", 10, &h));
  assert_int_equal(h, 0);
  ft_close(t);
  gh__auth_basic_cache_free(c);
}

/* concurrent lookups and inserts (TSan build): handles balance */
#include <pthread.h>
static gh__auth_basic_cache_t *mt_cache;
static int mt_hits[4];
static pthread_mutex_t ft_lock = PTHREAD_MUTEX_INITIALIZER;

static int mt_open_handle(gh_token_t t, gh_token_t *ret)
{
  pthread_mutex_lock(&ft_lock);
  int r = ft_open_handle(t, ret);
  pthread_mutex_unlock(&ft_lock);
  return r;
}

static int mt_close(gh_token_t t)
{
  pthread_mutex_lock(&ft_lock);
  int r = ft_close(t);
  pthread_mutex_unlock(&ft_lock);
  return r;
}

static const gh__auth_token_ops_t mt_ops = { .open_handle = mt_open_handle, .close = mt_close };

static void *mt_main(void *arg)
{
  int id = (int)(intptr_t)arg;
  char u[16];
  for (int i = 0; i < 2000; i++) {
    gh_token_t h = 0;
    snprintf(u, sizeof(u), "u%d", i % 8);
    if (gh__auth_basic_cache_lookup(mt_cache, u, "pw", 10 + i / 500, &h)) {
      mt_hits[id]++;
      if (h)
        mt_close(h);
    } else {
      pthread_mutex_lock(&ft_lock);
      gh_token_t t = ft_new(20 + i % 8);
      pthread_mutex_unlock(&ft_lock);
      gh__auth_basic_cache_insert(mt_cache, u, "pw", 10 + i / 500, t);
      mt_close(t);
    }
  }
  return NULL;
}

static void test_token_threads(void **state)
{
  pthread_t th[4];
  (void)state;
  ft_reset();
  mt_cache = gh__auth_basic_cache_new(8, 1, &mt_ops);
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, mt_main, (void *)(intptr_t)i);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  assert_true(mt_hits[0] + mt_hits[1] + mt_hits[2] + mt_hits[3] > 0);
  gh__auth_basic_cache_free(mt_cache);
  for (int i = 0; i < FT_MAX; i++)
    assert_int_equal(ft_refs[i], 0);
}

/* An AD user's entry keeps its SID (a hit names the user per site); a
 * local account's entry, a replaced entry and an expired one give "". */
static void test_sid_kept(void **state)
{
  gh__auth_basic_cache_t *c = gh__auth_basic_cache_new(1, 30, NULL);
  unsigned char k1[GH__AUTH_BASIC_KEY_SIZE], k2[GH__AUTH_BASIC_KEY_SIZE];
  char sid[192];
  (void)state;
  assert_non_null(c);
  assert_true(gh__auth_basic_cache_key(c, "ADTEST\\carla", "pw", k1));
  assert_true(gh__auth_basic_cache_key(c, "alice", "pw", k2));
  gh__auth_basic_cache_insert_key(c, k1, 10, 0, "S-1-5-21-1-2-3-1102");
  memset(sid, 'x', sizeof(sid));
  assert_true(gh__auth_basic_cache_lookup_key(c, k1, 11, NULL, sid));
  assert_string_equal(sid, "S-1-5-21-1-2-3-1102");
  gh__auth_basic_cache_insert_key(c, k2, 12, 0, NULL); /* one slot: replaces */
  assert_false(gh__auth_basic_cache_lookup_key(c, k1, 12, NULL, sid));
  assert_string_equal(sid, "");
  memset(sid, 'x', sizeof(sid));
  assert_true(gh__auth_basic_cache_lookup_key(c, k2, 12, NULL, sid));
  assert_string_equal(sid, "");
  gh__auth_basic_cache_insert_key(c, k1, 20, 0, "S-1-5-21-1-2-3-1102");
  assert_false(gh__auth_basic_cache_lookup_key(c, k1, 50, NULL, sid)); /* expired */
  assert_string_equal(sid, "");
  gh__auth_basic_cache_free(c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ttl),
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_disabled_and_collisions),
    cmocka_unit_test(test_token_hit),
    cmocka_unit_test(test_token_wrong_password),
    cmocka_unit_test(test_token_ttl),
    cmocka_unit_test(test_token_bounded),
    cmocka_unit_test(test_token_none),
    cmocka_unit_test(test_token_threads),
    cmocka_unit_test(test_sid_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
