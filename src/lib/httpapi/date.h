/* date.h: IMF-fixdate formatting for the Date header, cached per thread and second (internal). */
#ifndef GH_HTTPAPI_DATE_H
#define GH_HTTPAPI_DATE_H

#include <time.h>

#define GH__HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/** Writes the IMF-fixdate of t (UTC) and a NUL into out[30]. */
void gh__http_date_format(time_t t, char out[GH__HTTP_DATE_LEN + 1]);

/** The current date, formatted at most once per second per thread. The
 *  string belongs to the calling thread and changes on later calls. */
const char *gh__http_date_now(void);

#endif
