/* sec_fixture.h: shared set-up for sec tests: nss_wrapper users, fixture files, /proc helpers. */
#ifndef GH_TEST_SEC_FIXTURE_H
#define GH_TEST_SEC_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

/* Accounts written to the nss_wrapper passwd/group files. */
#define U_ALICE 20001
#define U_BOB 20002
#define U_CAROL 20003
#define U_DAVE 20004
#define U_SVC 20100
#define U_LOW 500
#define G_ALICE 30001
#define G_BOB 30002
#define G_CAROL 30003
#define G_DAVE 30004
#define G_SHARED 30010 /* alice, carol */
#define G_PROJ 30011   /* bob, carol */
#define G_SVC 30100
#define U_NOBODY 65534

/* Call first in main(). Writes passwd/group files into a fresh temp dir and
 * re-executes the binary with LD_PRELOAD=libnss_wrapper.so and
 * NSS_WRAPPER_PASSWD/GROUP set (once). The directory is removed at exit. */
void fx_init(int argc, char **argv);
/* Whether the tests run as root (kernel-enforcement tests need it). */
bool fx_root(void);
/* The temp dir (mode 0755) holding the nss files and fixture trees. */
const char *fx_dir(void);
/* Rewrite the group file with one extra line appended (NULL = original). */
void fx_write_groups(const char *extra_line);
/* The "Key:" line of /proc/thread-self/status (or path), value only, into buf. */
bool fx_status(const char *path, const char *key, char *buf, size_t len);
/* Four numbers of a Uid:/Gid: status line. */
bool fx_status_ids(const char *path, const char *key, unsigned ids[4]);
/* Run fn in a forked child; return its wait status. */
int fx_fork(void (*fn)(void *), void *arg);
/* Whether a wait status is "killed by SIGABRT". */
bool fx_aborted(int status);
/* Whether a wait status is "exited 0". */
bool fx_exited_ok(int status);

#endif
