/* error.c: messages and names for gatehouse error codes. */
#include <string.h>

#include <gatehouse/error.h>

const char *gh_strerror(int err)
{
  if (err == 0)
    return "success";
  switch ((gh_errno_t)err) {
#define GH__ERR_MSG(name, msg) \
  case GH_##name:              \
    return msg;
    GH_ERRNO_MAP(GH__ERR_MSG)
#undef GH__ERR_MSG
  case GH_E_FIRST_:
  case GH_E_LAST_:
    break;
  }
  if (err < 0 && err >= GH_E_ERRNO_MIN) {
    const char *s = strerrordesc_np(-err);
    if (s != NULL)
      return s;
  }
  return "unknown error";
}

const char *gh_err_name(int err)
{
  if (err == 0)
    return "OK";
  switch ((gh_errno_t)err) {
#define GH__ERR_NAME(name, msg) \
  case GH_##name:               \
    return "GH_" #name;
    GH_ERRNO_MAP(GH__ERR_NAME)
#undef GH__ERR_NAME
  case GH_E_FIRST_:
  case GH_E_LAST_:
    break;
  }
  if (err < 0 && err >= GH_E_ERRNO_MIN) {
    const char *s = strerrorname_np(-err);
    if (s != NULL)
      return s;
  }
  return "UNKNOWN";
}
