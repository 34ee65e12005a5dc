/* str.c: tables behind the string helpers in str.h. */
#include "util/str.h"

#define T1(c) [c] = 1
/* RFC 9110 §5.6.2 tchar */
const unsigned char gh__tchar[256] = {
  T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'),
  T1('^'), T1('_'), T1('`'), T1('|'), T1('~'),
  ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};
