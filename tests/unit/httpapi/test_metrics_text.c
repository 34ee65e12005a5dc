/* test_metrics_text.c: unit tests for the Prometheus text of the counters — HELP/TYPE, label
 * escaping, histogram buckets/_sum/_count, status codes, auth and session counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <gatehouse/metrics.h>

#include "httpapi/metrics.h"

static int reset(void **state)
{
  (void)state;
  gh__metrics_reset_for_tests();
  return 0;
}

static char *render(void)
{
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(gh_metrics_render(&text, &len), 0);
  assert_non_null(text);
  assert_int_equal(strlen(text), len);
  return text;
}

/* The line that starts with prefix (the whole sample name and labels). */
static const char *line(const char *text, const char *prefix)
{
  size_t n = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
      return p + n + 1;
  return NULL;
}

static unsigned long long value(const char *text, const char *prefix)
{
  const char *v = line(text, prefix);
  if (v == NULL)
    fail_msg("no sample '%s' in:\n%s", prefix, text);
  return strtoull(v, NULL, 10);
}

static void test_help_type_before_every_sample(void **state)
{
  (void)state;
  gh__metrics_request(gh__metrics_site("/s"), gh__metrics_code(200), 1000);
  gh__metrics_auth(GH_AUTH_TYPE_BASIC, GH__MO_FAILURE, GH_AUTH_FAILURE_BAD_PASSWORD);
  char *text = render(), *save = NULL;
  char typed[64][96];
  size_t n_typed = 0, n_help = 0;
  for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char name[96];
    if (strncmp(l, "# HELP ", 7) == 0) {
      n_help++;
      continue;
    }
    if (sscanf(l, "# TYPE %95s", name) == 1) {
      for (size_t i = 0; i < n_typed; i++)
        assert_string_not_equal(typed[i], name); /* one TYPE per metric */
      assert_true(n_typed < 64);
      snprintf(typed[n_typed++], sizeof(typed[0]), "%s", name);
      continue;
    }
    assert_true(l[0] != '#');
    size_t len = strcspn(l, "{ ");
    int found = 0;
    for (size_t i = 0; i < n_typed && !found; i++) {
      size_t tl = strlen(typed[i]);
      /* a histogram's samples are NAME_bucket / _sum / _count */
      found = strncmp(l, typed[i], tl) == 0 &&
              (len == tl || strncmp(l + tl, "_bucket", len - tl) == 0 ||
               strncmp(l + tl, "_sum", len - tl) == 0 || strncmp(l + tl, "_count", len - tl) == 0);
    }
    if (!found)
      fail_msg("sample without a TYPE line before it: %s", l);
  }
  assert_int_equal(n_help, n_typed);
  assert_true(n_typed >= 15);
  free(text);
}

static void test_label_values_escaped(void **state)
{
  (void)state;
  unsigned s = gh__metrics_site("/a\"b\\c\nd");
  gh__metrics_request(s, gh__metrics_code(404), 1000);
  char *text = render();
  assert_int_equal(
      value(text, "gatehouse_http_requests_total{site=\"/a\\\"b\\\\c\\nd\",code=\"404\"}"), 1);
  assert_null(strstr(text, "c\nd")); /* no raw newline inside a value */
  free(text);
}

static void test_histogram(void **state)
{
  (void)state;
  unsigned s = gh__metrics_site("/h");
  gh__metrics_request(s, gh__metrics_code(200), 200000ull);      /* 0.2 ms */
  gh__metrics_request(s, gh__metrics_code(200), 3000000ull);     /* 3 ms */
  gh__metrics_request(s, gh__metrics_code(500), 20000000000ull); /* 20 s: only +Inf */
  gh__metrics_request(s, gh__metrics_code(400), UINT64_MAX);     /* no latency known */
  char *text = render();
  const char *b = "gatehouse_http_request_duration_seconds_bucket{site=\"/h\",le=";
  char k[160];
  snprintf(k, sizeof(k), "%s\"0.0005\"}", b);
  assert_int_equal(value(text, k), 1);
  snprintf(k, sizeof(k), "%s\"0.0025\"}", b);
  assert_int_equal(value(text, k), 1);
  snprintf(k, sizeof(k), "%s\"0.005\"}", b); /* cumulative */
  assert_int_equal(value(text, k), 2);
  snprintf(k, sizeof(k), "%s\"10\"}", b);
  assert_int_equal(value(text, k), 2);
  snprintf(k, sizeof(k), "%s\"+Inf\"}", b);
  assert_int_equal(value(text, k), 3);
  assert_int_equal(value(text, "gatehouse_http_request_duration_seconds_count{site=\"/h\"}"), 3);
  const char *sum = line(text, "gatehouse_http_request_duration_seconds_sum{site=\"/h\"}");
  assert_non_null(sum);
  assert_true(strtod(sum, NULL) > 20.0031 && strtod(sum, NULL) < 20.0033);
  assert_int_equal(value(text, "gatehouse_http_requests_total{site=\"/h\",code=\"400\"}"), 1);
  /* (none) has counted nothing: no histogram for it yet */
  assert_null(strstr(text, "site=\"(none)\""));
  free(text);
}

static void test_codes(void **state)
{
  (void)state;
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(401)), "401");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(418)), "4xx");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(299)), "2xx");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(101)), "1xx");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(99)), "other");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(600)), "other");
  assert_string_equal(gh__metrics_code_name(gh__metrics_code(-1)), "other");
  for (int c = 100; c < 600; c++) /* every code has a series whose name is it or its class */
    assert_true(strcmp(gh__metrics_code_name(gh__metrics_code(c)), "other") != 0);
}

static void test_auth_and_sessions(void **state)
{
  (void)state;
  gh__metrics_auth(GH_AUTH_TYPE_NEGOTIATE, GH__MO_SUCCESS, GH_AUTH_FAILURE_NONE);
  gh__metrics_auth(GH_AUTH_TYPE_NEGOTIATE, GH__MO_FAILURE, GH_AUTH_FAILURE_REPLAY);
  gh__metrics_auth(GH_AUTH_TYPE_NEGOTIATE, GH__MO_FAILURE, GH_AUTH_FAILURE_REPLAY);
  gh__metrics_auth(GH_AUTH_TYPE_BASIC, GH__MO_MALFORMED, GH_AUTH_FAILURE_NONE);
  gh__metrics_auth((gh_auth_type_t)77, GH__MO_ERROR, GH_AUTH_FAILURE_NONE); /* out of range */
  gh__metrics_session(GH__MS_MINTED, GH__MSR_NONE);
  gh__metrics_session(GH__MS_ACCEPTED, GH__MSR_NONE);
  gh__metrics_session(GH__MS_ACCEPTED, GH__MSR_NONE);
  gh__metrics_session(GH__MS_REFUSED, GH__MSR_EXPIRED);
  gh_metrics_worker_restarted();
  gh_metrics_worker_alive(3);
  char *text = render();
  assert_int_equal(
      value(text, "gatehouse_auth_attempts_total{scheme=\"negotiate\",outcome=\"success\"}"), 1);
  assert_int_equal(
      value(text, "gatehouse_auth_attempts_total{scheme=\"negotiate\",outcome=\"failure\"}"), 2);
  assert_int_equal(
      value(text, "gatehouse_auth_failures_total{scheme=\"negotiate\",reason=\"REPLAY\"}"), 2);
  assert_int_equal(
      value(text, "gatehouse_auth_attempts_total{scheme=\"basic\",outcome=\"malformed\"}"), 1);
  assert_int_equal(value(text, "gatehouse_auth_attempts_total{scheme=\"none\",outcome=\"error\"}"),
                   1);
  assert_int_equal(value(text, "gatehouse_auth_replays_refused_total"), 2);
  assert_int_equal(value(text, "gatehouse_sessions_minted_total"), 1);
  assert_int_equal(value(text, "gatehouse_sessions_accepted_total"), 2);
  assert_int_equal(value(text, "gatehouse_sessions_refused_total{reason=\"expired\"}"), 1);
  assert_int_equal(value(text, "gatehouse_sessions_refused_total{reason=\"invalid\"}"), 0);
  assert_int_equal(value(text, "gatehouse_worker_restarts_total"), 1);
  assert_int_equal(value(text, "gatehouse_worker_processes"), 3);
  assert_int_equal(value(text, "gatehouse_impersonations_total"), 0);
  free(text);
}

/* two entries of one name (two processes numbered a new site at once) are
 * one series: never a duplicate sample */
static void test_duplicate_site_entries_added_up(void **state)
{
  (void)state;
  unsigned a = gh__metrics_site("/dup");
  /* a second entry of the same name, as a racing process would make it */
  unsigned b = atomic_fetch_add(&gh__metrics_blk->n_sites, 1);
  memcpy(gh__metrics_blk->site_name + (size_t)b * GH__METRICS_SITE_NAME, "/dup", 5);
  atomic_store(&gh__metrics_blk->site_ready[b], 1);
  gh__metrics_request(a, gh__metrics_code(200), 1000);
  gh__metrics_request(b, gh__metrics_code(200), 1000);
  char *text = render();
  const char *k = "gatehouse_http_requests_total{site=\"/dup\",code=\"200\"} 2\n";
  const char *first = strstr(text, k);
  assert_non_null(first);
  assert_null(strstr(first + strlen(k), "site=\"/dup\",code=\"200\""));
  assert_int_equal(value(text, "gatehouse_http_request_duration_seconds_count{site=\"/dup\"}"), 2);
  free(text);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_help_type_before_every_sample, reset),
      cmocka_unit_test_setup(test_label_values_escaped, reset),
      cmocka_unit_test_setup(test_histogram, reset),
      cmocka_unit_test_setup(test_codes, reset),
      cmocka_unit_test_setup(test_auth_and_sessions, reset),
      cmocka_unit_test_setup(test_duplicate_site_entries_added_up, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
