/* auth_pac.c: SIDs of an AD user — the bounded MS-PAC logon-info parser, the gss-ntlmssp SID list,
 * GSS name attributes and winbind SID → id mapping. */
#include "httpapi/auth/auth_pac.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gssapi/gssapi_ext.h>

#include <gatehouse/error.h>

#include "sec/nss.h"
#include "util/alloc.h"

#if GH_HAVE_WBCLIENT
#include <stdint.h>
#include <wbclient.h>
#endif

/* ---- binary SIDs and the list being built ------------------------------- */

typedef struct sid {
  uint8_t nsub;
  uint64_t auth; /* 48 bits */
  uint32_t sub[GH__SID_MAX_SUBAUTH];
} sid_t;

typedef struct sidbuild {
  size_t n, cap;
  char (*s)[GH__SID_STR_MAX];
} sidbuild_t;

static int sb_add_str(sidbuild_t *b, const char *str)
{
  if (b->n >= b->cap)
    return GH_ELIMIT;
  snprintf(b->s[b->n], GH__SID_STR_MAX, "%s", str);
  b->n++;
  return 0;
}

static void sid_format(const sid_t *sid, char *out)
{
  size_t off = (size_t)snprintf(out, GH__SID_STR_MAX, "S-1-%" PRIu64, sid->auth);
  for (unsigned i = 0; i < sid->nsub && off < GH__SID_STR_MAX; i++)
    off += (size_t)snprintf(out + off, GH__SID_STR_MAX - off, "-%" PRIu32, sid->sub[i]);
}

static int sb_add(sidbuild_t *b, const sid_t *sid)
{
  char str[GH__SID_STR_MAX];
  sid_format(sid, str);
  return sb_add_str(b, str);
}

/* domain SID + one RID */
static int sb_add_rid(sidbuild_t *b, const sid_t *dom, uint32_t rid)
{
  sid_t s = *dom;
  if (s.nsub >= GH__SID_MAX_SUBAUTH)
    return -EBADMSG;
  s.sub[s.nsub++] = rid;
  return sb_add(b, &s);
}

static int sb_finish(sidbuild_t *b, gh__sids_t **ret)
{
  size_t strs = 0;
  for (size_t i = 0; i < b->n; i++)
    strs += strlen(b->s[i]) + 1;
  gh__sids_t *out = gh__malloc(sizeof(*out) + b->n * sizeof(char *) + strs);
  if (out == NULL)
    return -ENOMEM;
  char *p = (char *)&out->v[b->n];
  out->n = b->n;
  for (size_t i = 0; i < b->n; i++) {
    size_t l = strlen(b->s[i]) + 1;
    memcpy(p, b->s[i], l);
    out->v[i] = p;
    p += l;
  }
  *ret = out;
  return 0;
}

/* room for cap SIDs (at most GH__PAC_MAX_SIDS, checked by the callers) */
static int sb_init(sidbuild_t *b, size_t cap)
{
  b->n = 0;
  b->cap = cap;
  b->s = gh__malloc((cap ? cap : 1) * GH__SID_STR_MAX);
  return b->s ? 0 : -ENOMEM;
}

/* ---- NDR reader --------------------------------------------------------- */

typedef struct rd {
  const uint8_t *p;
  size_t len, off;
  bool bad;
} rd_t;

static void rd_align4(rd_t *r)
{
  size_t pad = (4 - (r->off & 3)) & 3;
  if (pad > r->len - r->off)
    r->bad = true;
  else
    r->off += pad;
}

static bool rd_need(rd_t *r, size_t n)
{
  if (r->bad || n > r->len - r->off) {
    r->bad = true;
    return false;
  }
  return true;
}

static void rd_skip(rd_t *r, size_t n)
{
  if (rd_need(r, n))
    r->off += n;
}

static uint32_t rd_u32(rd_t *r)
{
  rd_align4(r);
  if (!rd_need(r, 4))
    return 0;
  const uint8_t *q = r->p + r->off;
  r->off += 4;
  return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
}

static uint16_t rd_u16(rd_t *r)
{
  if (!rd_need(r, 2))
    return 0;
  const uint8_t *q = r->p + r->off;
  r->off += 2;
  return (uint16_t)(q[0] | q[1] << 8);
}

/* RPC_UNICODE_STRING: Length, MaximumLength, pointer; returns the pointer */
static uint32_t rd_ustr_hdr(rd_t *r, uint16_t *ret_len)
{
  rd_align4(r);
  *ret_len = rd_u16(r);
  (void)rd_u16(r);
  return rd_u32(r);
}

/* the deferred conformant varying array of a non-NULL RPC_UNICODE_STRING */
static void rd_ustr_body(rd_t *r, uint16_t bytes)
{
  uint32_t max = rd_u32(r), off = rd_u32(r), actual = rd_u32(r);
  if (off != 0 || actual > max || (size_t)actual * 2 != bytes)
    r->bad = true;
  rd_skip(r, (size_t)actual * 2);
}

/* a deferred RPC_SID: conformance count, then the SID */
static void rd_sid(rd_t *r, sid_t *sid)
{
  uint32_t count = rd_u32(r);
  if (!rd_need(r, 8))
    return;
  const uint8_t *q = r->p + r->off;
  if (q[0] != 1 || q[1] != count || count > GH__SID_MAX_SUBAUTH) {
    r->bad = true;
    return;
  }
  sid->nsub = q[1];
  sid->auth = 0;
  for (int i = 2; i < 8; i++)
    sid->auth = sid->auth << 8 | q[i];
  r->off += 8;
  for (unsigned i = 0; i < sid->nsub; i++)
    sid->sub[i] = rd_u32(r);
}

/* ---- KERB_VALIDATION_INFO ------------------------------------------------ */

#define LOGON_EXTRA_SIDS 0x20u
#define LOGON_RESOURCE_GROUPS 0x200u

/* MS-RPCE 2.2.6 type serialisation version 1: common header (version 1,
 * little-endian 0x10, length 8, filler) and private header (object length,
 * filler). */
static int parse_header(rd_t *r)
{
  if (!rd_need(r, 16))
    return -EBADMSG;
  const uint8_t *q = r->p;
  if (q[0] != 1 || q[1] != 0x10 || q[2] != 8 || q[3] != 0)
    return -EBADMSG;
  r->off = 8;
  uint32_t objlen = rd_u32(r);
  (void)rd_u32(r);
  if (objlen > r->len - 16)
    return -EBADMSG;
  r->len = 16 + (size_t)objlen; /* nothing past the object is read */
  return 0;
}

int gh__pac_logon_sids(const uint8_t *buf, size_t len, gh__sids_t **ret_sids)
{
  rd_t r = {.p = buf, .len = len, .off = 0, .bad = false};
  sidbuild_t b = {0};
  uint16_t slen[8];
  uint32_t sptr[8];
  uint32_t user_rid, primary_rid, ngroups, groups_ptr, flags, dom_ptr, nextra, extra_ptr;
  uint32_t res_dom_ptr, nres, res_ptr;
  sid_t dom = {0}, res_dom = {0};
  uint32_t *rids = NULL, *res_rids = NULL, *extra_ptrs = NULL;
  int rc;

  if (buf == NULL || ret_sids == NULL)
    return -EINVAL;
  rc = parse_header(&r);
  if (rc != 0)
    goto out;
  if (rd_u32(&r) == 0) { /* top-level pointer to the structure */
    rc = -EBADMSG;
    goto out;
  }
  rd_skip(&r, 6 * 8);         /* six FILETIMEs */
  for (int i = 0; i < 6; i++) /* EffectiveName … HomeDirectoryDrive */
    sptr[i] = rd_ustr_hdr(&r, &slen[i]);
  (void)rd_u16(&r); /* LogonCount */
  (void)rd_u16(&r); /* BadPasswordCount */
  user_rid = rd_u32(&r);
  primary_rid = rd_u32(&r);
  ngroups = rd_u32(&r);
  groups_ptr = rd_u32(&r);
  flags = rd_u32(&r);
  rd_skip(&r, 16);                     /* UserSessionKey */
  sptr[6] = rd_ustr_hdr(&r, &slen[6]); /* LogonServer */
  sptr[7] = rd_ustr_hdr(&r, &slen[7]); /* LogonDomainName */
  dom_ptr = rd_u32(&r);
  rd_skip(&r, 8);   /* Reserved1 */
  (void)rd_u32(&r); /* UserAccountControl */
  (void)rd_u32(&r); /* SubAuthStatus */
  rd_skip(&r, 16);  /* LastSuccessfulILogon, LastFailedILogon */
  (void)rd_u32(&r); /* FailedILogonCount */
  (void)rd_u32(&r); /* Reserved3 */
  nextra = rd_u32(&r);
  extra_ptr = rd_u32(&r);
  res_dom_ptr = rd_u32(&r);
  nres = rd_u32(&r);
  res_ptr = rd_u32(&r);
  if (r.bad || dom_ptr == 0 || (groups_ptr == 0) != (ngroups == 0) ||
      (extra_ptr == 0) != (nextra == 0) || (res_ptr == 0) != (nres == 0) ||
      (size_t)ngroups + nextra + nres + 2 > GH__PAC_MAX_SIDS) {
    rc = !r.bad && (size_t)ngroups + nextra + nres + 2 > GH__PAC_MAX_SIDS ? GH_ELIMIT : -EBADMSG;
    goto out;
  }
  /* deferred referents, in declaration order */
  for (int i = 0; i < 6; i++)
    if (sptr[i])
      rd_ustr_body(&r, slen[i]);
  if (groups_ptr) {
    if (rd_u32(&r) != ngroups) {
      rc = -EBADMSG;
      goto out;
    }
    rids = gh__malloc((size_t)ngroups * sizeof(*rids) + 1);
    if (rids == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    for (uint32_t i = 0; i < ngroups && !r.bad; i++) {
      rids[i] = rd_u32(&r);
      (void)rd_u32(&r); /* attributes */
    }
  }
  for (int i = 6; i < 8; i++)
    if (sptr[i])
      rd_ustr_body(&r, slen[i]);
  rd_sid(&r, &dom);
  if (r.bad) {
    rc = -EBADMSG;
    goto out;
  }
  rc = sb_init(&b, (size_t)ngroups + nextra + nres + 2);
  if (rc != 0)
    goto out;
  rc = sb_add_rid(&b, &dom, user_rid);
  if (rc == 0)
    rc = sb_add_rid(&b, &dom, primary_rid);
  for (uint32_t i = 0; rc == 0 && i < ngroups; i++)
    rc = sb_add_rid(&b, &dom, rids[i]);
  if (rc != 0)
    goto out;
  if (extra_ptr) {
    if (rd_u32(&r) != nextra) {
      rc = -EBADMSG;
      goto out;
    }
    extra_ptrs = gh__malloc((size_t)nextra * sizeof(*extra_ptrs) + 1);
    if (extra_ptrs == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    for (uint32_t i = 0; i < nextra && !r.bad; i++) {
      extra_ptrs[i] = rd_u32(&r);
      (void)rd_u32(&r); /* attributes */
    }
    for (uint32_t i = 0; i < nextra && !r.bad && rc == 0; i++) {
      sid_t s;
      if (extra_ptrs[i] == 0)
        continue;
      rd_sid(&r, &s);
      if (!r.bad && (flags & LOGON_EXTRA_SIDS))
        rc = sb_add(&b, &s);
    }
    if (rc != 0)
      goto out;
  }
  if (res_dom_ptr)
    rd_sid(&r, &res_dom);
  if (res_ptr) {
    if (rd_u32(&r) != nres) {
      rc = -EBADMSG;
      goto out;
    }
    res_rids = gh__malloc((size_t)nres * sizeof(*res_rids) + 1);
    if (res_rids == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    for (uint32_t i = 0; i < nres && !r.bad; i++) {
      res_rids[i] = rd_u32(&r);
      (void)rd_u32(&r);
    }
    if (!r.bad && res_dom_ptr && (flags & LOGON_RESOURCE_GROUPS))
      for (uint32_t i = 0; i < nres && rc == 0; i++)
        rc = sb_add_rid(&b, &res_dom, res_rids[i]);
    if (rc != 0)
      goto out;
  }
  if (r.bad) {
    rc = -EBADMSG;
    goto out;
  }
  rc = sb_finish(&b, ret_sids);
out:
  free(rids);
  free(res_rids);
  free(extra_ptrs);
  free(b.s);
  return rc;
}

/* ---- SID strings --------------------------------------------------------- */

/* one decimal component without leading zeros, at most max */
static const char *parse_num(const char *s, const char *end, uint64_t max)
{
  uint64_t v = 0;
  const char *p = s;
  if (p == end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
    return NULL;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > max)
      return NULL;
  }
  return p;
}

static bool sid_valid_n(const char *s, size_t n)
{
  const char *end = s + n, *p;
  unsigned subs = 0;
  if (n < 6 || n >= GH__SID_STR_MAX || memcmp(s, "S-1-", 4) != 0)
    return false;
  p = parse_num(s + 4, end, 0xffffffffffffULL);
  while (p != NULL && p < end) {
    if (*p != '-' || ++subs > GH__SID_MAX_SUBAUTH)
      return false;
    p = parse_num(p + 1, end, 0xffffffffULL);
  }
  return p == end;
}

bool gh__sid_valid(const char *s)
{
  return s != NULL && sid_valid_n(s, strnlen(s, GH__SID_STR_MAX));
}

int gh__ntlm_sids_parse(const char *buf, size_t len, gh__sids_t **ret_sids)
{
  sidbuild_t b = {0};
  int rc;

  if (buf == NULL || ret_sids == NULL)
    return -EINVAL;
  if (len > 0 && buf[len - 1] == '\0')
    len--;
  if (len == 0 || memchr(buf, '\0', len) != NULL)
    return -EBADMSG;
  {
    size_t commas = 0;
    for (size_t i = 0; i < len; i++)
      commas += buf[i] == ',';
    if (commas + 1 > GH__PAC_MAX_SIDS)
      return GH_ELIMIT;
    rc = sb_init(&b, commas + 1);
  }
  if (rc != 0)
    goto out;
  for (size_t i = 0; i < len && rc == 0;) {
    const char *c = memchr(buf + i, ',', len - i);
    size_t l = c ? (size_t)(c - (buf + i)) : len - i;
    char one[GH__SID_STR_MAX];
    if (!sid_valid_n(buf + i, l)) {
      rc = -EBADMSG;
      break;
    }
    memcpy(one, buf + i, l);
    one[l] = '\0';
    rc = sb_add_str(&b, one);
    i += l + 1;
    if (c != NULL && i == len)
      rc = -EBADMSG; /* trailing comma */
  }
  if (rc == 0)
    rc = sb_finish(&b, ret_sids);
out:
  free(b.s);
  return rc;
}

/* ---- GSS name attributes ------------------------------------------------- */

int gh__auth_name_sids(gss_name_t name, bool ntlm, gh__sids_t **ret_sids)
{
  static const char pac_attr[] = "urn:mspac:logon-info";
  static const char ntlm_attr[] = "urn:gssntlmssp:sids";
  const char *a = ntlm ? ntlm_attr : pac_attr;
  gss_buffer_desc attr = {strlen(a), (void *)a};
  gss_buffer_desc value = GSS_C_EMPTY_BUFFER, display = GSS_C_EMPTY_BUFFER;
  OM_uint32 major, minor;
  int authenticated = 0, complete = 0, more = -1;
  int rc = 0;

  *ret_sids = NULL;
  major = gss_get_name_attribute(&minor, name, &attr, &authenticated, &complete, &value, &display,
                                 &more);
  if (GSS_ERROR(major))
    goto out; /* no such attribute: not an AD name */
  if (!authenticated) {
    rc = -EBADMSG; /* never trust an unverified PAC or SID list */
    goto out;
  }
  if (ntlm)
    rc = gh__ntlm_sids_parse(value.value, value.length, ret_sids);
  else
    rc = gh__pac_logon_sids(value.value, value.length, ret_sids);
  if (rc == 0 && (*ret_sids)->n == 0) {
    free(*ret_sids);
    *ret_sids = NULL;
    rc = -EBADMSG;
  }
out:
  gss_release_buffer(&minor, &value);
  gss_release_buffer(&minor, &display);
  return rc;
}

/* ---- winbind ------------------------------------------------------------- */

bool gh__have_wbclient(void)
{
  return GH_HAVE_WBCLIENT;
}

#if GH_HAVE_WBCLIENT
int gh__sids_to_gids(const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n)
{
  struct wbcDomainSid *bin = NULL;
  struct wbcUnixId *ids = NULL;
  gid_t *gids = NULL;
  size_t n = 0;
  wbcErr w;
  int rc = 0;

  bin = gh__calloc(sids->n ? sids->n : 1, sizeof(*bin));
  ids = gh__calloc(sids->n ? sids->n : 1, sizeof(*ids));
  gids = gh__calloc(sids->n ? sids->n : 1, sizeof(*gids));
  if (bin == NULL || ids == NULL || gids == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < sids->n; i++)
    if (!WBC_ERROR_IS_OK(wbcStringToSid(sids->v[i], &bin[i]))) {
      rc = -EBADMSG;
      goto out;
    }
  w = wbcSidsToUnixIds(bin, (uint32_t)sids->n, ids);
  if (!WBC_ERROR_IS_OK(w)) {
    rc = -EAGAIN;
    goto out;
  }
  for (size_t i = 0; i < sids->n; i++)
    if (ids[i].type == WBC_ID_TYPE_GID || ids[i].type == WBC_ID_TYPE_BOTH)
      gids[n++] = ids[i].id.gid;
  *ret_gids = gids;
  *ret_n = n;
  gids = NULL;
out:
  free(bin);
  free(ids);
  free(gids);
  return rc;
}

/* winbind's error as ours: not running is "try again" (503), the rest "no such user" */
static int wbc_rc(wbcErr w)
{
  switch (w) {
  case WBC_ERR_SUCCESS:
    return 0;
  case WBC_ERR_NO_MEMORY:
    return -ENOMEM;
  case WBC_ERR_WINBIND_NOT_AVAILABLE:
  case WBC_ERR_NSS_ERROR:
  case WBC_ERR_UNKNOWN_FAILURE:
    return -EAGAIN;
  default:
    return GH_ENO_SUCH_USER;
  }
}

int gh__sid_identity(const char *sid, int fmt, char **ret_canonical, char **ret_local)
{
  struct wbcDomainSid bin;
  struct wbcDomainInfo *dinfo = NULL;
  enum wbcSidType type;
  char *dom = NULL, *name = NULL, *pwbuf = NULL, *canon = NULL, *local = NULL;
  char realm[256];
  struct passwd pw;
  uid_t uid;
  int rc;

  if (!WBC_ERROR_IS_OK(wbcStringToSid(sid, &bin))) {
    rc = -EBADMSG;
    goto out;
  }
  rc = wbc_rc(wbcSidToUid(&bin, &uid));
  if (rc != 0)
    goto out;
  rc = gh__nss_lookup(GH__NSS_PWUID, NULL, (uint32_t)uid, &pw, &pwbuf);
  if (rc != 0)
    goto out;
  rc = wbc_rc(wbcLookupSid(&bin, &dom, &name, &type));
  if (rc != 0)
    goto out;
  if (type != WBC_SID_NAME_USER && type != WBC_SID_NAME_COMPUTER) {
    rc = GH_ENO_SUCH_USER;
    goto out;
  }
  if (fmt == 1) { /* user@REALM: the domain's DNS name, upper case */
    rc = wbc_rc(wbcDomainInfo(dom, &dinfo));
    if (rc != 0)
      goto out;
    snprintf(realm, sizeof(realm), "%s",
             dinfo->dns_name && dinfo->dns_name[0] ? dinfo->dns_name : dom);
    for (char *p = realm; *p; p++)
      *p = (char)toupper((unsigned char)*p);
    rc = asprintf(&canon, "%s@%s", name, realm);
  } else if (fmt == 2) {
    rc = asprintf(&canon, "%s", name);
  } else {
    rc = asprintf(&canon, "%s\\%s", dom, name);
  }
  if (rc < 0) {
    canon = NULL;
    rc = -ENOMEM;
    goto out;
  }
  local = gh__strdup(pw.pw_name);
  if (local == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  *ret_canonical = canon;
  *ret_local = local;
  canon = local = NULL;
  rc = 0;
out:
  wbcFreeMemory(dom);
  wbcFreeMemory(name);
  wbcFreeMemory(dinfo);
  free(pwbuf);
  free(canon);
  free(local);
  return rc;
}
#else
int gh__sid_identity(const char *sid, int fmt, char **ret_canonical, char **ret_local)
{
  (void)sid;
  (void)fmt;
  (void)ret_canonical;
  (void)ret_local;
  return -ENOSYS;
}

int gh__sids_to_gids(const gh__sids_t *sids, gid_t **ret_gids, size_t *ret_n)
{
  (void)sids;
  (void)ret_gids;
  (void)ret_n;
  return -ENOSYS;
}
#endif
