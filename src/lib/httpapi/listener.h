/* listener.h: listen-address parsing (internal, pure, unit-tested). */
#ifndef GH_HTTPAPI_LISTENER_H
#define GH_HTTPAPI_LISTENER_H

#include <sys/socket.h>

/** Parses "HOST:PORT", "[V6]:PORT", ":PORT", "*:PORT" or "unix:/path" into a
 *  socket address. Host names are resolved (first result). Returns 0,
 *  GH_EPARSE, or -ENAMETOOLONG for a too long Unix path. */
int gh__listener_parse(const char *address, struct sockaddr_storage *ret_addr,
                       socklen_t *ret_len);

#endif
