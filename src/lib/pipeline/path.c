/* path.c: joins a site root and a decoded URL path without letting ".." climb out of the root. */
#include <errno.h>
#include <string.h>
#include <sys/types.h>

#include "pipeline/pipeline_int.h"

ssize_t gh__pl_path_join(const char *root, const char *path, char *out, size_t outsz)
{
  ssize_t ret = 0;
  size_t rlen, len, base;
  const char *p = path;
  if (root == NULL || path == NULL || out == NULL || outsz == 0) {
    ret = -EINVAL;
    goto out;
  }
  rlen = strlen(root);
  while (rlen > 1 && root[rlen - 1] == '/')
    rlen--;
  if (rlen + 1 >= outsz) {
    ret = -ENAMETOOLONG;
    goto out;
  }
  memcpy(out, root, rlen);
  len = base = rlen;
  if (len == 1 && out[0] == '/')
    len = base = 0; /* root "/" */
  while (*p != '\0') {
    const char *seg;
    size_t slen;
    while (*p == '/')
      p++;
    seg = p;
    while (*p != '\0' && *p != '/')
      p++;
    slen = (size_t)(p - seg);
    if (slen == 0 || (slen == 1 && seg[0] == '.'))
      continue;
    if (memchr(seg, '\0', slen) != NULL || memchr(seg, '\\', slen) != NULL) {
      ret = -EACCES;
      goto out;
    }
    if (slen == 2 && seg[0] == '.' && seg[1] == '.') {
      if (len == base) {
        ret = -EACCES; /* would leave the root */
        goto out;
      }
      while (len > base && out[len - 1] != '/')
        len--;
      if (len > base)
        len--;
      continue;
    }
    if (len + 1 + slen + 1 > outsz) {
      ret = -ENAMETOOLONG;
      goto out;
    }
    out[len++] = '/';
    memcpy(out + len, seg, slen);
    len += slen;
  }
  if (len == 0)
    out[len++] = '/';
  out[len] = '\0';
  ret = (ssize_t)len;
out:
  return ret;
}
