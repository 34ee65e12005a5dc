/* date.c: IMF-fixdate formatting for the Date header, cached per thread and second. */
#include "httpapi/date.h"

#include <string.h>

static void put2(char *p, int v)
{
  p[0] = (char)('0' + v / 10 % 10);
  p[1] = (char)('0' + v % 10);
}

void gh__http_date_format(time_t t, char out[GH__HTTP_DATE_LEN + 1])
{
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
    memset(&tm, 0, sizeof(tm)), tm.tm_year = 70, tm.tm_mday = 1, tm.tm_wday = 4;
  memcpy(out, days[tm.tm_wday], 3);
  out[3] = ',';
  out[4] = ' ';
  put2(out + 5, tm.tm_mday);
  out[7] = ' ';
  memcpy(out + 8, months[tm.tm_mon], 3);
  out[11] = ' ';
  int y = tm.tm_year + 1900;
  put2(out + 12, y / 100);
  put2(out + 14, y % 100);
  out[16] = ' ';
  put2(out + 17, tm.tm_hour);
  out[19] = ':';
  put2(out + 20, tm.tm_min);
  out[22] = ':';
  put2(out + 23, tm.tm_sec);
  memcpy(out + 25, " GMT", 4);
  out[29] = '\0';
}

const char *gh__http_date_now(void)
{
  static __thread time_t cached_t = -1;
  static __thread char cached[GH__HTTP_DATE_LEN + 1];
  time_t now = time(NULL);
  if (now != cached_t) {
    gh__http_date_format(now, cached);
    cached_t = now;
  }
  return cached;
}
