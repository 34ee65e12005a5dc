/* auth_parse.c: Authorization header parsing, strict base64, Basic credentials, 401 challenge lists. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth.h"

#define BASIC_USER_MAX 256
#define BASIC_PASSWORD_MAX 1024

static bool is_tchar(unsigned char c)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* token68 characters before any '=' (RFC 7235): ALPHA DIGIT - . _ ~ + /
 * A table: credentials are scanned per request, up to 64 KiB of them. */
static const bool token68_tab[256] = {
  ['-'] = true, ['.'] = true, ['_'] = true, ['~'] = true, ['+'] = true, ['/'] = true,
  ['0'] = true, ['1'] = true, ['2'] = true, ['3'] = true, ['4'] = true, ['5'] = true,
  ['6'] = true, ['7'] = true, ['8'] = true, ['9'] = true,
  ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true, ['F'] = true,
  ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true, ['L'] = true,
  ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true, ['R'] = true,
  ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true, ['X'] = true,
  ['Y'] = true, ['Z'] = true,
  ['a'] = true, ['b'] = true, ['c'] = true, ['d'] = true, ['e'] = true, ['f'] = true,
  ['g'] = true, ['h'] = true, ['i'] = true, ['j'] = true, ['k'] = true, ['l'] = true,
  ['m'] = true, ['n'] = true, ['o'] = true, ['p'] = true, ['q'] = true, ['r'] = true,
  ['s'] = true, ['t'] = true, ['u'] = true, ['v'] = true, ['w'] = true, ['x'] = true,
  ['y'] = true, ['z'] = true,
};

static bool is_token68_char(unsigned char c)
{
  return token68_tab[c];
}

static gh__auth_scheme_id_t scheme_id(const char *s, size_t len)
{
  static const struct {
    const char *name;
    gh__auth_scheme_id_t id;
  } names[] = {
    { "Basic", GH__AUTH_SCHEME_BASIC },
    { "NTLM", GH__AUTH_SCHEME_NTLM },
    { "Negotiate", GH__AUTH_SCHEME_NEGOTIATE },
    { "Kerberos", GH__AUTH_SCHEME_KERBEROS },
  };
  gh__auth_scheme_id_t id = GH__AUTH_SCHEME_UNKNOWN;

  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strlen(names[i].name) == len && strncasecmp(names[i].name, s, len) == 0) {
      id = names[i].id;
      break;
    }
  }
  return id;
}

int gh__auth_parse_header(const char *value, size_t len, size_t max_b64,
                          gh__auth_scheme_id_t *ret_scheme, const char **ret_scheme_name,
                          size_t *ret_scheme_len, const char **ret_cred, size_t *ret_cred_len)
{
  size_t i = 0, s0, s1, c0, c1;
  int ret = 0;

  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  s0 = i;
  while (i < len && is_tchar((unsigned char)value[i]))
    i++;
  s1 = i;
  if (s1 == s0) {
    ret = GH_EPARSE;
    goto out;
  }
  if (i < len && value[i] != ' ' && value[i] != '\t') {
    ret = GH_EPARSE;
    goto out;
  }
  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  c0 = i;
  while (i < len && is_token68_char((unsigned char)value[i]))
    i++;
  while (i < len && value[i] == '=')
    i++;
  c1 = i;
  while (i < len && (value[i] == ' ' || value[i] == '\t'))
    i++;
  if (i != len) {
    ret = GH_EPARSE; /* a second token, auth-params or a bad character */
    goto out;
  }
  if (c1 - c0 > max_b64) {
    ret = GH_ELIMIT;
    goto out;
  }
  *ret_scheme = scheme_id(value + s0, s1 - s0);
  *ret_scheme_name = value + s0;
  *ret_scheme_len = s1 - s0;
  *ret_cred = value + c0;
  *ret_cred_len = c1 - c0;
out:
  return ret;
}

/* Decoding table: the 6-bit value of each base64 character, 0x80 for every
 * other byte (so that OR-ing four lookups flags any invalid one). */
static const uint8_t b64_dec[256] = {
#define X 0x80
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x00 */
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x10 */
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  62, X,  X,  X,  63, /* 0x20 + / */
  52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X,  X,  X,  X,  X,  X,  /* 0x30 0-9 */
  X,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, /* 0x40 A-O */
  15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, X,  X,  X,  X,  X,  /* 0x50 P-Z */
  X,  26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* 0x60 a-o */
  41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, X,  X,  X,  X,  X,  /* 0x70 p-z */
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  /* 0x80- */
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,  X,
#undef X
};

size_t gh__b64_decoded_max(size_t len)
{
  return (len / 4 + 1) * 3;
}

size_t gh__b64_encoded_len(size_t len)
{
  return (len + 2) / 3 * 4;
}

/* Table-driven, four characters at a time. Accepts exactly what the
 * original bit-by-bit decoder accepted: up to two '=' only at the very end
 * and then only with a length that is a multiple of 4, no padding at all
 * otherwise allowed (a final group of 2 or 3 characters), never a final
 * group of 1, nothing outside the alphabet (no whitespace, no '=' inside),
 * and the unused bits of a final short group must be zero (canonical). */
int gh__b64_decode(const char *in, size_t len, unsigned char *out, size_t *ret_len)
{
  const unsigned char *p = (const unsigned char *)in;
  size_t pad = 0, n = 0, data_len, full, i;
  int ret = 0;

  while (pad < 2 && len > pad && p[len - 1 - pad] == '=')
    pad++;
  data_len = len - pad;
  if ((pad && len % 4 != 0) || data_len % 4 == 1) {
    ret = GH_EPARSE;
    goto out;
  }
  full = data_len - data_len % 4;
  for (i = 0; i < full; i += 4) {
    uint32_t a = b64_dec[p[i]], b = b64_dec[p[i + 1]], c = b64_dec[p[i + 2]],
             d = b64_dec[p[i + 3]];
    if ((a | b | c | d) & 0x80) {
      ret = GH_EPARSE;
      goto out;
    }
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out[n] = (unsigned char)(v >> 16);
    out[n + 1] = (unsigned char)(v >> 8);
    out[n + 2] = (unsigned char)v;
    n += 3;
  }
  if (data_len - full == 2) {
    uint32_t a = b64_dec[p[i]], b = b64_dec[p[i + 1]];
    if (((a | b) & 0x80) || (b & 0x0f)) { /* invalid, or non-zero trailing bits */
      ret = GH_EPARSE;
      goto out;
    }
    out[n++] = (unsigned char)(a << 2 | b >> 4);
  } else if (data_len - full == 3) {
    uint32_t a = b64_dec[p[i]], b = b64_dec[p[i + 1]], c = b64_dec[p[i + 2]];
    if (((a | b | c) & 0x80) || (c & 0x03)) {
      ret = GH_EPARSE;
      goto out;
    }
    out[n++] = (unsigned char)(a << 2 | b >> 4);
    out[n++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
  }
  *ret_len = n;
out:
  return ret;
}

void gh__b64_encode(const unsigned char *in, size_t len, char *out)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;

  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = tab[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = tab[v >> 18];
    out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

int gh__auth_basic_split(char *buf, size_t len, const char **ret_user, const char **ret_password)
{
  char *colon;
  int ret = 0;

  colon = memchr(buf, ':', len);
  if (!colon || colon == buf) {
    ret = GH_EPARSE;
    goto out;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c < 0x20 || c == 0x7f) {
      ret = GH_EPARSE;
      goto out;
    }
  }
  if ((size_t)(colon - buf) > BASIC_USER_MAX || len - (size_t)(colon - buf) - 1 > BASIC_PASSWORD_MAX) {
    ret = GH_ELIMIT;
    goto out;
  }
  *colon = '\0';
  buf[len] = '\0';
  *ret_user = buf;
  *ret_password = colon + 1;
out:
  return ret;
}

static bool scheme_usable(uint32_t scheme, const gh_auth_settings_t *site,
                          const gh__auth_transport_t *tp)
{
  bool ok = (site->schemes & scheme) != 0;

  if (scheme == GH_AUTH_SCHEME_NTLM)
    ok = ok && tp->keep_alive;
  else if (scheme == GH_AUTH_SCHEME_BASIC)
    ok = ok && (tp->kind != GH__AUTH_TRANSPORT_TCP || site->basic_over_plain_http);
  else if (scheme == GH_AUTH_SCHEME_PEER)
    ok = false;
  return ok;
}

static size_t format_basic(char *out, size_t avail, const char *realm)
{
  size_t n = 0, need;

  /* 'Basic realm="' + escaped + '", charset="UTF-8"' */
  need = strlen("Basic realm=\"\", charset=\"UTF-8\"") + 1;
  for (const char *p = realm; *p; p++)
    need += (*p == '"' || *p == '\\') ? 2 : 1;
  if (need > avail)
    goto out;
  n += (size_t)snprintf(out, avail, "Basic realm=\"");
  for (const char *p = realm; *p; p++) {
    if (*p == '"' || *p == '\\')
      out[n++] = '\\';
    out[n++] = ((unsigned char)*p < 0x20) ? ' ' : *p;
  }
  n += (size_t)snprintf(out + n, avail - n, "\", charset=\"UTF-8\"");
  n += 1;
out:
  return n;
}

int gh__auth_challenge_list(const gh_auth_settings_t *site, const gh__auth_transport_t *tp,
                            char *buf, size_t buflen,
                            const char *ret_values[GH__AUTH_MAX_CHALLENGES])
{
  static const uint32_t default_order[] = { GH_AUTH_SCHEME_NEGOTIATE, GH_AUTH_SCHEME_KERBEROS,
                                            GH_AUTH_SCHEME_NTLM, GH_AUTH_SCHEME_BASIC };
  uint32_t order[GH_AUTH_ORDER_MAX + 4];
  size_t n_order = 0, used = 0;
  uint32_t done = 0;
  int count = 0, ret = 0;

  for (size_t i = 0; i < GH_AUTH_ORDER_MAX && site->order[i]; i++)
    order[n_order++] = site->order[i];
  /* schemes offered but missing from an explicit order follow in default order */
  for (size_t i = 0; i < sizeof(default_order) / sizeof(default_order[0]); i++)
    order[n_order++] = default_order[i];

  for (size_t i = 0; i < n_order && count < GH__AUTH_MAX_CHALLENGES; i++) {
    uint32_t s = order[i];
    const char *lit = NULL;
    size_t n;

    if ((done & s) || !scheme_usable(s, site, tp))
      continue;
    done |= s;
    if (s == GH_AUTH_SCHEME_NEGOTIATE)
      lit = "Negotiate";
    else if (s == GH_AUTH_SCHEME_KERBEROS)
      lit = "Kerberos";
    else if (s == GH_AUTH_SCHEME_NTLM)
      lit = "NTLM";
    if (lit) {
      n = strlen(lit) + 1;
      if (used + n > buflen) {
        ret = GH_ELIMIT;
        goto out;
      }
      memcpy(buf + used, lit, n);
    } else if (s == GH_AUTH_SCHEME_BASIC) {
      n = format_basic(buf + used, buflen - used, site->realm ? site->realm : "gatehouse");
      if (n == 0) {
        ret = GH_ELIMIT;
        goto out;
      }
    } else {
      continue;
    }
    ret_values[count++] = buf + used;
    used += n;
  }
  ret = count;
out:
  return ret;
}

/* Length of an SPN without its "@REALM". */
static size_t spn_base_len(const char *s, size_t len)
{
  const char *at = memchr(s, '@', len);
  return at ? (size_t)(at - s) : len;
}

bool gh__auth_spn_allowed(const char *list, const char *spn)
{
  size_t sl;

  if (!list || !spn || !*spn)
    return false;
  sl = spn_base_len(spn, strlen(spn));
  while (*list) {
    size_t n = strcspn(list, " \t,");
    if (n > 0 && spn_base_len(list, n) == sl && strncasecmp(list, spn, sl) == 0)
      return true;
    list += n;
    list += strspn(list, " \t,");
  }
  return false;
}
