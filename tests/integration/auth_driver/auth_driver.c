/* auth_driver.c: drives the auth engine in-process with real GSS initiators (Kerberos, NTLM, SPNEGO), PAM and peers; prints JSON lines. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include <gatehouse/authinfo.h>
#include <gatehouse/error.h>
#include <gatehouse/impersonate.h>
#include <gatehouse/token.h>

#include "httpapi/auth/auth.h"

/*
 * Usage: auth_driver SCENARIO [options]     (environment from gh_realm.env()
 * plus KRB5CCNAME of a kinit'ed client for the Kerberos scenarios)
 * Each engine step prints one JSON object per line; pytest asserts on them.
 */

static gss_OID_desc krb5_oid = { 9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02" };
static gss_OID_desc spnego_oid = { 6, (void *)"\x2b\x06\x01\x05\x05\x02" };
static gss_OID_desc ntlmssp_oid = { 10, (void *)"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a" };

static gh__auth_engine_t *engine;
static gh_auth_settings_t site;
static gh__auth_transport_t tcp_ka = { GH__AUTH_TRANSPORT_TCP, true, -1 };

static void die(const char *what, const char *detail)
{
  fprintf(stderr, "auth_driver: %s: %s\n", what, detail ? detail : "");
  exit(2);
}

static void gss_die(const char *what, OM_uint32 maj, OM_uint32 min)
{
  OM_uint32 ctx = 0, m;
  gss_buffer_desc t1 = GSS_C_EMPTY_BUFFER, t2 = GSS_C_EMPTY_BUFFER;

  gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &t1);
  ctx = 0;
  gss_display_status(&m, min, GSS_C_MECH_CODE, GSS_C_NO_OID, &ctx, &t2);
  fprintf(stderr, "auth_driver: %s: %.*s / %.*s\n", what, (int)t1.length, (char *)t1.value,
          (int)t2.length, (char *)t2.value);
  exit(2);
}

static void json_val(const char *v)
{
  putchar('"');
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if ((unsigned char)*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void json_str(const char *k, const char *v, int *first)
{
  printf("%s\"%s\":", *first ? "" : ",", k);
  *first = 0;
  if (!v) {
    printf("null");
    return;
  }
  putchar('"');
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\')
      printf("\\%c", *p);
    else if ((unsigned char)*p < 0x20)
      printf("\\u%04x", *p);
    else
      putchar(*p);
  }
  putchar('"');
}

static void json_int(const char *k, long long v, int *first)
{
  printf("%s\"%s\":%lld", *first ? "" : ",", k, v);
  *first = 0;
}

static const char *verdict_name(gh__auth_verdict_t v)
{
  static const char *n[] = { "DELIVER", "CHALLENGE", "BAD_REQUEST", "UNAVAILABLE" };
  return n[v];
}

/* Prints the result; extra JSON members via extra (may be NULL). */
static void print_result(const char *step, const gh__auth_result_t *r, const char *extra)
{
  int f = 1;
  const gh_auth_info_t *i = &r->info;

  printf("{");
  json_str("step", step, &f);
  json_str("verdict", verdict_name(r->verdict), &f);
  json_int("error", r->error, &f);
  json_str("status", gh_auth_status_name(i->status), &f);
  json_str("type", gh_auth_type_name(i->type), &f);
  json_str("package", i->package_name, &f);
  json_int("sec_kind", i->sec_status.kind, &f);
  json_int("sec_major", i->sec_status.major, &f);
  json_int("sec_minor", i->sec_status.minor, &f);
  json_str("sec_text", gh_auth_info_sec_status_text(i), &f);
  json_int("flags", i->flags, &f);
  json_int("ctx_attr", i->context_attributes, &f);
  json_int("packed_len", (long long)i->packed_context_len, &f);
  json_int("packed_type", i->packed_context_type, &f);
  json_str("mutual", i->mutual_auth_data, &f);
  json_int("mutual_len", (long long)i->mutual_auth_data_len, &f);
  json_str("mutual_header", r->mutual_auth_header, &f);
  json_str("remote_user", i->remote_user, &f);
  json_str("local_user", i->local_user, &f);
  json_int("expiry_in", i->expiry ? (long long)(i->expiry - time(NULL)) : 0, &f);
  json_int("token", i->token != 0, &f);
  if (i->token) {
    gh_token_level_t lvl;
    gh_token_source_t src;
    uid_t uid;
    gss_cred_id_t dc = GSS_C_NO_CREDENTIAL;
    char user[256], an[256];
    if (gh_token_get_level(i->token, &lvl) == 0)
      json_int("token_level", lvl, &f);
    if (gh_token_get_source(i->token, &src) == 0)
      json_int("token_source", src, &f);
    if (gh_token_get_uid(i->token, &uid) == 0)
      json_int("token_uid", uid, &f);
    if (gh_token_get_user(i->token, user, sizeof(user)) >= 0)
      json_str("token_user", user, &f);
    if (gh_token_get_auth_name(i->token, an, sizeof(an)) >= 0)
      json_str("token_auth_name", an, &f);
    uint64_t tid = 0;
    if (gh_token_get_id(i->token, &tid) == 0)
      json_int("token_id", (long long)tid, &f);
    json_int("token_has_deleg", gh_token_get_delegated_cred(i->token, &dc) == 0 &&
                                    dc != GSS_C_NO_CREDENTIAL, &f);
  }
  if (i->packed_context) {
    uint32_t lt = 0;
    json_int("packed_lifetime_rc", gh_auth_packed_context_lifetime(i, &lt), &f);
    json_int("packed_lifetime", lt, &f);
  }
  printf("%s\"challenges\":[", f ? "" : ",");
  for (size_t k = 0; k < r->n_challenges; k++)
  {
    printf("%s", k ? "," : "");
    json_val(r->challenges[k]);
  }
  printf("]");
  if (extra)
    printf(",%s", extra);
  printf("}\n");
  fflush(stdout);
}

/* Close the receiver's token exactly once, check a second close fails. */
static void finish(gh__auth_result_t *r)
{
  if (r->info.token) {
    int a = gh_token_close(r->info.token);
    int b = gh_token_close(r->info.token);
    if (a != 0 || b != GH_EINVALID_HANDLE)
      die("token close", "first close failed or second close did not report an invalid handle");
  }
  gh__auth_result_done(r);
}

static char *header(const char *scheme, const void *tok, size_t len)
{
  char *h = malloc(strlen(scheme) + 2 + gh__b64_encoded_len(len));
  if (!h)
    die("malloc", "header");
  sprintf(h, "%s ", scheme);
  gh__b64_encode(tok, len, h + strlen(h));
  return h;
}

static int step(gh__auth_conn_t *c, const char *authz, gh__auth_result_t *r)
{
  return gh__auth_step(engine, c, &site, &tcp_ka, authz, authz ? strlen(authz) : 0, r);
}

static gss_name_t target(const char *spn)
{
  gss_buffer_desc b = { strlen(spn), (void *)spn };
  gss_name_t n = GSS_C_NO_NAME;
  OM_uint32 maj, min;

  maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, &n);
  if (GSS_ERROR(maj))
    gss_die("import target", maj, min);
  return n;
}

static const char *host_spn(void)
{
  static char spn[300];
  char h[256];
  gethostname(h, sizeof(h));
  snprintf(spn, sizeof(spn), "HTTP@%s", h);
  return spn;
}

/* One Kerberos initiator token (via SPNEGO or raw krb5) from the KRB5CCNAME ccache. */
static char *krb5_header(const char *spn, bool spnego, bool deleg, gss_ctx_id_t *ret_ctx)
{
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_name_t t = target(spn);
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  OM_uint32 maj, min, flags = GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
  char *h;

  if (deleg)
    flags |= GSS_C_DELEG_FLAG;
  maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, t, spnego ? &spnego_oid : &krb5_oid,
                             flags, 0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out,
                             NULL, NULL);
  if (GSS_ERROR(maj))
    gss_die("init krb5", maj, min);
  h = header(spnego ? "Negotiate" : "Kerberos", out.value, out.length);
  gss_release_buffer(&min, &out);
  gss_release_name(&min, &t);
  if (ret_ctx)
    *ret_ctx = ctx;
  else
    gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
  return h;
}

/* NTLM initiator credentials for DOMAIN\user with a password. */
static gss_cred_id_t ntlm_cred(const char *user, const char *pw, bool spnego)
{
  gss_key_value_element_desc el[1] = { { "ntlmssp_password", pw } };
  gss_key_value_set_desc st = { 1, el };
  gss_buffer_desc b = { strlen(user), (void *)user };
  gss_name_t n = GSS_C_NO_NAME;
  gss_OID_set_desc mechs = { 1, spnego ? &spnego_oid : &ntlmssp_oid };
  gss_OID_set_desc neg = { 1, &ntlmssp_oid };
  gss_cred_id_t c = GSS_C_NO_CREDENTIAL;
  OM_uint32 maj, min;

  maj = gss_import_name(&min, &b, GSS_C_NT_USER_NAME, &n);
  if (GSS_ERROR(maj))
    gss_die("import user", maj, min);
  maj = gss_acquire_cred_from(&min, n, GSS_C_INDEFINITE, &mechs, GSS_C_INITIATE, &st, &c, NULL,
                              NULL);
  if (GSS_ERROR(maj))
    gss_die("acquire ntlm cred", maj, min);
  if (spnego) {
    maj = gss_set_neg_mechs(&min, c, &neg);
    if (GSS_ERROR(maj))
      gss_die("set_neg_mechs", maj, min);
  }
  gss_release_name(&min, &n);
  return c;
}

typedef struct ntlm_client {
  gss_ctx_id_t ctx;
  gss_cred_id_t cred;
  gss_name_t target;
  bool spnego;
  OM_uint32 flags;
} ntlm_client_t;

/* Next initiator header from the server's challenge header (NULL first). NULL when done. */
static char *ntlm_next(ntlm_client_t *nc, const char *challenge)
{
  gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out = GSS_C_EMPTY_BUFFER;
  unsigned char *dec = NULL;
  OM_uint32 maj, min;
  char *h = NULL;

  if (challenge) {
    const char *sp = strchr(challenge, ' ');
    size_t n;
    if (!sp)
      return NULL;
    sp++;
    dec = malloc(gh__b64_decoded_max(strlen(sp)));
    if (gh__b64_decode(sp, strlen(sp), dec, &n) != 0)
      die("challenge", "bad base64");
    in.value = dec;
    in.length = n;
  }
  maj = gss_init_sec_context(&min, nc->cred, &nc->ctx, nc->target,
                             nc->spnego ? &spnego_oid : &ntlmssp_oid, nc->flags, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, challenge ? &in : GSS_C_NO_BUFFER, NULL,
                             &out, NULL, NULL);
  if (GSS_ERROR(maj))
    gss_die("init ntlm", maj, min);
  if (out.length)
    h = header(nc->spnego ? "Negotiate" : "NTLM", out.value, out.length);
  gss_release_buffer(&min, &out);
  free(dec);
  return h;
}

static void ntlm_client_init(ntlm_client_t *nc, const char *user, const char *pw, bool spnego)
{
  memset(nc, 0, sizeof(*nc));
  nc->spnego = spnego;
  nc->cred = ntlm_cred(user, pw, spnego);
  nc->target = target(getenv("GH_NTLM_TARGET") ? getenv("GH_NTLM_TARGET") : host_spn());
  nc->flags = GSS_C_MUTUAL_FLAG | GSS_C_INTEG_FLAG | GSS_C_CONF_FLAG;
}

static void ntlm_client_done(ntlm_client_t *nc)
{
  OM_uint32 min;
  gss_delete_sec_context(&min, &nc->ctx, GSS_C_NO_BUFFER);
  gss_release_cred(&min, &nc->cred);
  gss_release_name(&min, &nc->target);
}

/* ---- scenarios ---- */

/* krb5 [--raw] [--deleg] [--spn HTTP@host] [--delay-ms N]: one request, then one with no
 * header. --delay-ms: wait between creating the token and the step (expired tickets). */
static int sc_krb5(int argc, char **argv)
{
  bool raw = false, deleg = false;
  const char *spn = "HTTP@localhost";
  long delay_ms = 0;
  gh__auth_conn_t *c = gh__auth_conn_new(engine);
  gh__auth_result_t r;
  gss_ctx_id_t ictx = GSS_C_NO_CONTEXT;

  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--raw"))
      raw = true;
    else if (!strcmp(argv[i], "--deleg"))
      deleg = true;
    else if (!strcmp(argv[i], "--spn") && i + 1 < argc)
      spn = argv[++i];
    else if (!strcmp(argv[i], "--delay-ms") && i + 1 < argc)
      delay_ms = atol(argv[++i]);
  }
  char *h = krb5_header(spn, !raw, deleg, &ictx);
  if (delay_ms > 0) {
    struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
  step(c, h, &r);
  char extra[1200] = "\"mutual_verified\":0";
  /* the client verifies the server's mutual-auth token */
  if (r.info.mutual_auth_data) {
    const char *sp = strchr(r.info.mutual_auth_data, ' ') + 1;
    unsigned char *dec = malloc(gh__b64_decoded_max(strlen(sp)));
    size_t n = 0;
    gss_buffer_desc in, out = GSS_C_EMPTY_BUFFER;
    OM_uint32 maj, min;
    gss_name_t t = target(spn);
    gh__b64_decode(sp, strlen(sp), dec, &n);
    in.value = dec;
    in.length = n;
    maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ictx, t,
                               raw ? &krb5_oid : &spnego_oid, 0, 0, GSS_C_NO_CHANNEL_BINDINGS,
                               &in, NULL, &out, NULL, NULL);
    snprintf(extra, sizeof(extra), "\"mutual_verified\":%d", maj == GSS_S_COMPLETE);
    gss_release_buffer(&min, &out);
    gss_release_name(&min, &t);
    free(dec);
  }
  if (deleg && r.info.token) {
    /* the delegated ccache: MEMORY now, a FILE for a child, gone at the end */
    const char *mem = gh__auth_result_mem_ccache(&r), *file = NULL;
    struct passwd *pw = getpwnam(r.info.local_user ? r.info.local_user : "");
    int frc = gh__auth_result_file_ccache(engine, &r, pw ? pw->pw_uid : 0, pw ? pw->pw_gid : 0,
                                          &file);
    struct stat st = { 0 }, dst = { 0 };
    char princ[256] = "";
    int n = 0;
    if (frc == 0) {
      krb5_context k;
      krb5_ccache cc;
      krb5_principal p;
      char *pn = NULL;
      stat(file + 5, &st);
      char dir[512];
      snprintf(dir, sizeof(dir), "%s", file + 5);
      *strrchr(dir, '/') = '\0';
      stat(dir, &dst);
      krb5_init_context(&k);
      if (krb5_cc_resolve(k, file, &cc) == 0 && krb5_cc_get_principal(k, cc, &p) == 0) {
        krb5_unparse_name(k, p, &pn);
        snprintf(princ, sizeof(princ), "%s", pn);
        krb5_free_unparsed_name(k, pn);
        krb5_free_principal(k, p);
        krb5_cc_close(k, cc);
      }
      krb5_free_context(k);
    }
    n = snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
                 ",\"mem_ccache\":\"%s\",\"file_rc\":%d,\"file_ccache\":\"%s\",\"file_mode\":%u,"
                 "\"file_uid\":%u,\"dir_mode\":%u,\"file_princ\":\"%s\"",
                 mem ? mem : "", frc, file ? file : "", st.st_mode & 07777, st.st_uid,
                 dst.st_mode & 07777, princ);
    (void)n;
  }
  print_result("krb5", &r, extra);
  char *file_copy = r.file_ccache ? strdup(r.file_ccache + 5) : NULL;
  char *mem_copy = r.mem_ccache ? strdup(r.mem_ccache) : NULL;
  finish(&r);
  if (deleg) {
    /* after the request: file gone, MEMORY ccache destroyed */
    krb5_context k;
    krb5_ccache cc;
    krb5_principal p;
    int mem_alive = 0;
    krb5_init_context(&k);
    if (mem_copy && krb5_cc_resolve(k, mem_copy, &cc) == 0) {
      if (krb5_cc_get_principal(k, cc, &p) == 0) {
        mem_alive = 1;
        krb5_free_principal(k, p);
      }
      krb5_cc_close(k, cc);
    }
    krb5_free_context(k);
    printf("{\"step\":\"after\",\"file_exists\":%d,\"mem_alive\":%d}\n",
           file_copy ? access(file_copy, F_OK) == 0 : 0, mem_alive);
  }
  /* a second request with no header on the same connection */
  step(c, NULL, &r);
  print_result("noheader", &r, NULL);
  finish(&r);
  OM_uint32 min;
  gss_delete_sec_context(&min, &ictx, GSS_C_NO_BUFFER);
  free(h);
  free(file_copy);
  free(mem_copy);
  gh__auth_conn_free(c);
  return 0;
}

/* replay: the same Kerberos header twice on one connection, then on another */
static int sc_replay(int argc, char **argv)
{
  gh__auth_conn_t *c1 = gh__auth_conn_new(engine), *c2 = gh__auth_conn_new(engine);
  gh__auth_result_t r;
  bool raw = argc > 0 && !strcmp(argv[0], "--raw");
  char *h = krb5_header("HTTP@localhost", !raw, false, NULL);

  step(c1, h, &r);
  print_result("first", &r, NULL);
  finish(&r);
  step(c1, h, &r);
  print_result("same_conn", &r, NULL);
  finish(&r);
  step(c2, h, &r);
  print_result("other_conn", &r, NULL);
  finish(&r);
  free(h);
  gh__auth_conn_free(c1);
  gh__auth_conn_free(c2);
  return 0;
}

/* ntlm USER PW [--spnego]: legs on one connection, then a request with no header,
 * then a fresh Authorization on the persisted connection */
static int sc_ntlm(int argc, char **argv)
{
  bool spnego = argc > 2 && !strcmp(argv[2], "--spnego");
  gh__auth_conn_t *c = gh__auth_conn_new(engine);
  ntlm_client_t nc;
  gh__auth_result_t r;
  char *h, leg[16];
  int legs = 0;

  ntlm_client_init(&nc, argv[0], argv[1], spnego);
  h = ntlm_next(&nc, NULL);
  for (;;) {
    step(c, h, &r);
    snprintf(leg, sizeof(leg), "leg%d", ++legs);
    print_result(leg, &r, NULL);
    free(h);
    h = NULL;
    if (r.verdict != GH__AUTH_CHALLENGE || legs > 4)
      break;
    h = ntlm_next(&nc, r.challenges[0]);
    finish(&r);
  }
  finish(&r);
  step(c, NULL, &r);
  print_result("noheader", &r, NULL);
  finish(&r);
  step(c, NULL, &r);
  print_result("noheader2", &r, NULL);
  finish(&r);
  /* new Authorization on the persisted connection: verified again (garbage -> FAILURE) */
  step(c, spnego ? "Negotiate YWJjZA==" : "NTLM TlRMTVNTUAADAAAA", &r);
  print_result("reauth_bad", &r, NULL);
  finish(&r);
  step(c, NULL, &r);
  print_result("after_bad", &r, NULL);
  finish(&r);
  ntlm_client_done(&nc);
  gh__auth_conn_free(c);
  return 0;
}

/* ntlm-cross USER PW: negotiate on connection A, authenticate on connection B */
static int sc_ntlm_cross(int argc, char **argv)
{
  gh__auth_conn_t *a = gh__auth_conn_new(engine), *b = gh__auth_conn_new(engine);
  ntlm_client_t nc;
  gh__auth_result_t r;
  bool spnego = argc > 2 && !strcmp(argv[2], "--spnego");

  ntlm_client_init(&nc, argv[0], argv[1], spnego);
  char *h1 = ntlm_next(&nc, NULL);
  step(a, h1, &r);
  print_result("leg1_a", &r, NULL);
  char *h2 = ntlm_next(&nc, r.challenges[0]);
  finish(&r);
  step(b, h2, &r);
  print_result("leg2_b", &r, NULL);
  finish(&r);
  /* and the half-open context on A does not accept it after B tried either? It must
   * still be able to finish on A (the leg belongs there). */
  step(a, h2, &r);
  print_result("leg2_a", &r, NULL);
  finish(&r);
  free(h1);
  free(h2);
  ntlm_client_done(&nc);
  gh__auth_conn_free(a);
  gh__auth_conn_free(b);
  return 0;
}

/* ntlm-anon: an anonymous (NULL session) AUTHENTICATE message after a real challenge */
static int sc_ntlm_anon(int argc, char **argv)
{
  gh__auth_conn_t *c = gh__auth_conn_new(engine);
  gh__auth_result_t r;
  ntlm_client_t nc;
  unsigned char msg[96];
  uint32_t neg_flags = 0;

  (void)argc;
  (void)argv;
  ntlm_client_init(&nc, "GH\\alice", "alicepw", false);
  char *h1 = ntlm_next(&nc, NULL);
  step(c, h1, &r);
  print_result("leg1", &r, NULL);
  if (r.verdict == GH__AUTH_CHALLENGE) {
    const char *sp = strchr(r.challenges[0], ' ') + 1;
    unsigned char chal[4096];
    size_t n = 0;
    gh__b64_decode(sp, strlen(sp), chal, &n);
    if (n >= 24)
      memcpy(&neg_flags, chal + 20, 4);
  }
  finish(&r);
  /* AUTHENTICATE: LM response = one zero byte, NT response empty, empty names */
  memset(msg, 0, sizeof(msg));
  memcpy(msg, "NTLMSSP\0", 8);
  msg[8] = 3;
  uint32_t off = 88; /* after the 8-byte version and a 16-byte (zero) MIC */
  /* LmChallengeResponseFields: len 1, max 1 */
  msg[12] = 1; msg[14] = 1; memcpy(msg + 16, &off, 4);
  /* Nt, Domain, User, Workstation, EncryptedRandomSessionKey: len 0 at the end */
  uint32_t off2 = 89;
  for (int f = 0; f < 5; f++)
    memcpy(msg + 20 + f * 8 + 4, &off2, 4);
  uint32_t flags = (neg_flags & ~(0x40000000u /*KEY_EXCH*/)) | 0x00000800u /*ANONYMOUS*/;
  memcpy(msg + 60, &flags, 4);
  char *h2 = header("NTLM", msg, 89);
  step(c, h2, &r);
  print_result("anon", &r, NULL);
  finish(&r);
  /* and a GSS-made anonymous context if the mechanism allows one */
  free(h1);
  free(h2);
  ntlm_client_done(&nc);
  gh__auth_conn_free(c);
  return 0;
}

/* The test hook between requests i and i + 1 of n: GH_DRIVER_BETWEEN
 * "<cmd> <index>" (nothing after the last one). */
static void between(int i, int n)
{
  const char *hook = getenv("GH_DRIVER_BETWEEN");
  char cmd[1024];
  if (i + 1 >= n || hook == NULL)
    return;
  snprintf(cmd, sizeof(cmd), "%s %d", hook, i);
  if (system(cmd) != 0)
    die("between", cmd);
}

/* basic USER PW [N]: N requests (default 1), each a fresh connection */
static int sc_basic(int argc, char **argv)
{
  char buf[1024], *h;
  int n = argc > 2 ? atoi(argv[2]) : 1;

  snprintf(buf, sizeof(buf), "%s:%s", argv[0], argv[1]);
  h = header("Basic", buf, strlen(buf));
  for (int i = 0; i < n; i++) {
    gh__auth_conn_t *c = gh__auth_conn_new(engine);
    gh__auth_result_t r;
    struct timespec t0, t1;
    char extra[64];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    step(c, h, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snprintf(extra, sizeof(extra), "\"usec\":%ld",
             (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
    print_result("basic", &r, extra);
    finish(&r);
    gh__auth_conn_free(c);
    between(i, n);
  }
  free(h);
  return 0;
}

/* basicseq USER:PW...: Basic requests in order through one engine (fresh
 * connection each), GH_DRIVER_BETWEEN "<cmd> <index>" between them */
static int sc_basicseq(int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    char *h = header("Basic", argv[i], strlen(argv[i]));
    gh__auth_conn_t *c = gh__auth_conn_new(engine);
    gh__auth_result_t r;
    step(c, h, &r);
    print_result("basicseq", &r, NULL);
    finish(&r);
    gh__auth_conn_free(c);
    free(h);
    between(i, argc);
  }
  return 0;
}

/* basicconn [+]USER:PW...: Basic requests in order on ONE connection (the
 * engine's per-connection memo of the last verified header); a "+" item
 * goes over a fresh connection of its own. GH_DRIVER_BETWEEN as basicseq;
 * each result carries the engine's memo hit count so far. */
static int sc_basicconn(int argc, char **argv)
{
  gh__auth_conn_t *shared = gh__auth_conn_new(engine);
  for (int i = 0; i < argc; i++) {
    bool own = argv[i][0] == '+';
    const char *cred = argv[i] + (own ? 1 : 0);
    char *h = header("Basic", cred, strlen(cred));
    gh__auth_conn_t *c = own ? gh__auth_conn_new(engine) : shared;
    gh__auth_result_t r;
    char extra[64];
    step(c, h, &r);
    snprintf(extra, sizeof(extra), "\"memo_hits\":%llu",
             (unsigned long long)gh__auth_engine_basic_memo_hits(engine));
    print_result("basicconn", &r, extra);
    finish(&r);
    if (own)
      gh__auth_conn_free(c);
    free(h);
    between(i, argc);
  }
  gh__auth_conn_free(shared);
  return 0;
}

/* krb5seq N: N fresh Kerberos (SPNEGO) tokens through one engine, fresh
 * connection each, GH_DRIVER_BETWEEN "<cmd> <index>" between them */
static int sc_krb5seq(int argc, char **argv)
{
  int n = argc > 0 ? atoi(argv[0]) : 1;
  /* GH_CCACHES=cc1,cc2,...: request i uses ccache i % count (several clients) */
  char *ccs[8];
  int n_cc = 0;
  char *cclist = getenv("GH_CCACHES") ? strdup(getenv("GH_CCACHES")) : NULL;
  for (char *save = NULL, *t = cclist ? strtok_r(cclist, ",", &save) : NULL; t && n_cc < 8;
       t = strtok_r(NULL, ",", &save))
    ccs[n_cc++] = t;

  for (int i = 0; i < n; i++) {
    gh__auth_conn_t *c = gh__auth_conn_new(engine);
    gh__auth_result_t r;
    gss_ctx_id_t ictx = GSS_C_NO_CONTEXT;
    OM_uint32 min;
    uint64_t hits, misses, flushes;
    char extra[128];
    if (n_cc > 0 && GSS_ERROR(gss_krb5_ccache_name(&min, ccs[i % n_cc], NULL)))
      die("gss_krb5_ccache_name", ccs[i % n_cc]);
    char *h = krb5_header("HTTP@localhost", true, false, &ictx);
    step(c, h, &r);
    gh__auth_engine_name_map_stats(engine, &hits, &misses, &flushes);
    snprintf(extra, sizeof(extra), "\"nmap_hits\":%llu,\"nmap_misses\":%llu,\"nmap_flushes\":%llu",
             (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)flushes);
    print_result("krb5seq", &r, extra);
    finish(&r);
    gh__auth_conn_free(c);
    gss_delete_sec_context(&min, &ictx, GSS_C_NO_BUFFER);
    free(h);
    between(i, n);
  }
  free(cclist);
  return 0;
}

/* header VALUE...: raw Authorization values (fresh connection each) */
static int sc_header(int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    gh__auth_conn_t *c = gh__auth_conn_new(engine);
    gh__auth_result_t r;
    const char *v = argv[i];
    char *big = NULL;
    if (!strcmp(v, "@none"))
      v = NULL;
    else if (!strncmp(v, "@big:", 5)) {
      /* @big:SCHEME:N  -> SCHEME followed by N base64 'A's */
      char scheme[32];
      long nb;
      sscanf(v + 5, "%31[^:]:%ld", scheme, &nb);
      big = malloc(strlen(scheme) + 2 + (size_t)nb + 1);
      if (!big)
        die("malloc", "big header");
      sprintf(big, "%s ", scheme);
      memset(big + strlen(big), 'A', (size_t)nb);
      big[strlen(scheme) + 1 + (size_t)nb] = '\0';
      v = big;
    }
    step(c, v, &r);
    print_result(argv[i][0] == '@' ? argv[i] : "header", &r, NULL);
    finish(&r);
    gh__auth_conn_free(c);
    free(big);
  }
  return 0;
}

/* challenges: the 401 lists for several site/transport settings */
static int sc_challenges(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  const char *v[GH__AUTH_MAX_CHALLENGES];
  char buf[1024];
  gh__auth_transport_t tls = { GH__AUTH_TRANSPORT_TLS, true, -1 };
  int n = gh__auth_challenge_list(&site, &tls, buf, sizeof(buf), v);
  printf("{\"step\":\"challenges\",\"values\":[");
  for (int i = 0; i < n; i++)
  {
    printf("%s", i ? "," : "");
    json_val(v[i]);
  }
  printf("]}\n");
  return 0;
}

/* peer: a child at uid 20001 connects over AF_UNIX; the engine builds its token */
static int sc_peer(int argc, char **argv)
{
  int sv[2];
  (void)argc;
  (void)argv;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/gh-auth-peer-%d.sock", getpid());
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(sa.sun_path);
  if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 1) != 0)
    die("peer", strerror(errno));
  chmod(sa.sun_path, 0777);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) != 0 || setresgid(30001, 30001, 30001) != 0 ||
        setresuid(20001, 20001, 20001) != 0)
      _exit(3);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
      _exit(4);
    char b;
    (void)!read(s, &b, 1);
    _exit(0);
  }
  sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  gh__auth_transport_t tp = { GH__AUTH_TRANSPORT_UNIX, true, sv[0] };
  gh__auth_conn_t *c = gh__auth_conn_new(engine);
  gh__auth_result_t r;
  gh__auth_step(engine, c, &site, &tp, NULL, 0, &r);
  print_result("peer", &r, NULL);
  finish(&r);
  close(sv[0]);
  waitpid(pid, NULL, 0);
  close(l);
  unlink(sa.sun_path);
  gh__auth_conn_free(c);
  return 0;
}

/* engine: only create the engine (config from the environment) and report */
static int sc_engine(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  printf("{\"step\":\"engine\",\"ok\":1}\n");
  return 0;
}

/* accept-rate N: in-process gss_accept_sec_context rate through the engine */
static int sc_rate(int argc, char **argv)
{
  int n = argc > 0 ? atoi(argv[0]) : 200;
  char **h = calloc((size_t)n, sizeof(char *));
  gh__auth_conn_t *c = gh__auth_conn_new(engine);
  struct timespec t0, t1;
  int ok = 0;

  for (int i = 0; i < n; i++)
    h[i] = krb5_header("HTTP@localhost", true, false, NULL);
  if (getenv("GH_RATE_MARK")) /* syscall marker for strace/perf of the timed phase */
    (void)!write(2, "@@timed\n", 8);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < n; i++) {
    gh__auth_result_t r;
    step(c, h[i], &r);
    ok += r.info.status == GH_AUTH_STATUS_SUCCESS;
    finish(&r);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("{\"step\":\"rate\",\"n\":%d,\"ok\":%d,\"per_sec\":%.1f}\n", n, ok, n / s);
  for (int i = 0; i < n; i++)
    free(h[i]);
  free(h);
  gh__auth_conn_free(c);
  return 0;
}

int main(int argc, char **argv)
{
  gh__auth_engine_config_t cfg = { 0 };
  char err[512];
  int ret;

  if (argc < 2)
    die("usage", "auth_driver SCENARIO [args]");
  cfg.keytab = getenv("GH_KEYTAB");
  cfg.ntlm_user_file = getenv("GH_NTLM_USER_FILE");
  cfg.ntlm = cfg.ntlm_user_file != NULL;
  cfg.pam_service = getenv("GH_PAM_SERVICE");
  cfg.ccache_dir = getenv("GH_CCACHE_DIR");
  cfg.service_principal = getenv("GH_SERVICE_PRINCIPAL");
  cfg.basic_cache_ttl_s = getenv("GH_BASIC_TTL") ? (unsigned)atoi(getenv("GH_BASIC_TTL")) : 60;
  cfg.basic_cache_entries =
      getenv("GH_BASIC_ENTRIES") ? (unsigned)atoi(getenv("GH_BASIC_ENTRIES")) : 0;
  cfg.name_map_cache_ttl_s =
      getenv("GH_NAME_MAP_TTL") ? (unsigned)atoi(getenv("GH_NAME_MAP_TTL")) : 5;

  /* as the daemon: NSS group lists cached by the sec layer */
  gh_sec_config_t sc = { .min_uid = 1000, .group_cache_ttl_s = 60 };
  ret = gh_sec_init(&sc);
  if (ret)
    die("gh_sec_init", gh_strerror(ret));

  gh_auth_settings_init(&site);
  site.schemes = GH_AUTH_SCHEME_NEGOTIATE | GH_AUTH_SCHEME_NTLM | GH_AUTH_SCHEME_BASIC |
                 GH_AUTH_SCHEME_KERBEROS | GH_AUTH_SCHEME_PEER;
  site.basic_over_plain_http = true;
  site.realm = "gatehouse \"test\"";
  if (getenv("GH_PERSIST"))
    site.persist = !strcmp(getenv("GH_PERSIST"), "all")    ? GH_AUTH_PERSIST_ALL
                   : !strcmp(getenv("GH_PERSIST"), "none") ? GH_AUTH_PERSIST_NONE
                                                           : GH_AUTH_PERSIST_NTLM;
  site.receive_mutual_auth = getenv("GH_RECEIVE_MUTUAL") != NULL;
  site.packed_context = getenv("GH_NO_PACKED") == NULL;
  site.allow_unmapped = getenv("GH_ALLOW_UNMAPPED") != NULL;
  site.ntlm_keep_domain = getenv("GH_NTLM_KEEP_DOMAIN") != NULL;
  if (getenv("GH_MAX_TOKEN"))
    site.max_token_size = (size_t)atol(getenv("GH_MAX_TOKEN"));
  if (getenv("GH_SCHEMES"))
    site.schemes = (uint32_t)strtoul(getenv("GH_SCHEMES"), NULL, 0);
  if (getenv("GH_ORDER")) {
    char *o = strdup(getenv("GH_ORDER")), *save = NULL;
    int k = 0;
    for (char *t = strtok_r(o, ",", &save); t && k < GH_AUTH_ORDER_MAX;
         t = strtok_r(NULL, ",", &save))
      site.order[k++] = (uint32_t)strtoul(t, NULL, 0);
    free(o);
  }

  ret = gh__auth_engine_new(&cfg, err, sizeof(err), &engine);
  if (ret) {
    int f = 1;
    printf("{");
    json_str("step", "engine", &f);
    json_int("ok", 0, &f);
    json_str("error", gh_err_name(ret), &f);
    json_str("message", err, &f);
    printf("}\n");
    return 1;
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } sc_tab[] = {
    { "krb5", sc_krb5 },       { "replay", sc_replay },   { "ntlm", sc_ntlm },
    { "ntlm-cross", sc_ntlm_cross }, { "ntlm-anon", sc_ntlm_anon }, { "basic", sc_basic },
    { "header", sc_header },   { "challenges", sc_challenges }, { "peer", sc_peer },
    { "engine", sc_engine },   { "rate", sc_rate },       { "basicseq", sc_basicseq },
    { "basicconn", sc_basicconn },
    { "krb5seq", sc_krb5seq },
  };
  ret = 2;
  for (size_t i = 0; i < sizeof(sc_tab) / sizeof(sc_tab[0]); i++)
    if (!strcmp(argv[1], sc_tab[i].name))
      ret = sc_tab[i].fn(argc - 2, argv + 2);
  gh__auth_engine_free(engine);
  return ret;
}
