/* cgi_headers.c: parses a CGI script's header section (Status, Location, others) with limits. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cgi_headers.h"

static bool token_char(char c)
{
  return c > ' ' && c < 0x7f && c != ':' && c != '(' && c != ')' && c != '<' && c != '>' &&
         c != '@' && c != ',' && c != ';' && c != '\\' && c != '"' && c != '/' && c != '[' &&
         c != ']' && c != '?' && c != '=' && c != '{' && c != '}';
}

ssize_t cgi_parse_headers(char *buf, size_t len, cgi_headers_t *out)
{
  ssize_t ret = 0;
  size_t pos = 0;
  bool have_ct = false, have_status = false;
  size_t lim = len < CGI_MAX_HEADER_BYTES ? len : CGI_MAX_HEADER_BYTES;
  memset(out, 0, sizeof(*out));
  out->status = 200;
  snprintf(out->reason, sizeof(out->reason), "OK");
  for (;;) {
    char *line = buf + pos, *nl, *colon, *v, *end;
    size_t ll;
    nl = memchr(line, '\n', lim - pos);
    if (nl == NULL) {
      ret = len >= CGI_MAX_HEADER_BYTES ? -E2BIG : 0;
      goto out;
    }
    ll = (size_t)(nl - line);
    end = nl;
    if (ll > 0 && end[-1] == '\r') {
      end--;
      ll--;
    }
    pos = (size_t)(nl - buf) + 1;
    if (ll == 0)
      break; /* end of headers */
    *end = '\0';
    if (memchr(line, '\0', ll) != NULL) {
      ret = -EPROTO;
      goto out;
    }
    colon = strchr(line, ':');
    if (colon == NULL || colon == line) {
      ret = -EPROTO;
      goto out;
    }
    for (char *c = line; c < colon; c++)
      if (!token_char(*c)) {
        ret = -EPROTO;
        goto out;
      }
    *colon = '\0';
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
      e[-1] = '\0';
    for (char *c = v; *c; c++)
      if ((unsigned char)*c < 0x20 && *c != '\t') {
        ret = -EPROTO;
        goto out;
      }
    if (strcasecmp(line, "Status") == 0) {
      int code = 0, k = 0;
      while (v[k] >= '0' && v[k] <= '9' && k < 4)
        code = code * 10 + (v[k++] - '0');
      if (k != 3 || code < 100 || (v[k] != '\0' && v[k] != ' ')) {
        ret = -EPROTO;
        goto out;
      }
      out->status = code;
      while (v[k] == ' ')
        k++;
      snprintf(out->reason, sizeof(out->reason), "%s", v[k] ? v + k : "");
      have_status = true;
      continue;
    }
    if (strcasecmp(line, "Content-Type") == 0)
      have_ct = true;
    if (strcasecmp(line, "Location") == 0)
      out->location = v;
    if (out->n >= CGI_MAX_HEADERS) {
      ret = -E2BIG;
      goto out;
    }
    out->h[out->n].name = line;
    out->h[out->n].value = v;
    out->n++;
  }
  if (!have_ct && out->location == NULL && !have_status) {
    ret = -EPROTO;
    goto out;
  }
  if (out->location != NULL && !have_status && out->location[0] != '/') {
    out->status = 302;
    snprintf(out->reason, sizeof(out->reason), "Found");
  }
  ret = (ssize_t)pos;
out:
  return ret;
}
