/* auth_keytab.c: the acceptor keys — the keytab file copied into a MEMORY keytab and re-read when
 * it changed (an accept that found no key, SIGHUP, a 5 s poll); a bad file never costs a key. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <krb5.h>

#include <gatehouse/error.h>

#include "httpapi/auth/auth_internal.h"
#include "util/alloc.h"

/*
 * Why a MEMORY copy: MIT re-opens, locks and reads a FILE keytab on every
 * accept (krb5_kt_get_entry / a scan per ticket); from memory the acceptor
 * finds its key without a system call. Every credential set the engine
 * acquires names this MEMORY keytab in its cred store, and MIT resolves a
 * MEMORY name to one shared, process-wide table: a key added here is seen
 * by every credential at once, with no re-acquire.
 *
 * Keys are only ever added: MIT's MEMORY keytab frees an entry on remove
 * while another thread's scan may stand on it, so a key taken out of the
 * file stays until restart. Adding is safe while accepts scan (MIT prepends
 * under the table's lock).
 */

#define KT_REFRESH_MIN_MS 1000 /* an unchanged file is read again at most this often */
#define KT_POLL_S 5

struct gh__auth_keytab {
  pthread_mutex_t lock; /* reads of the file, st, last_*, k */
  krb5_context k;
  krb5_keytab mem;
  char *path;
  char mem_name[64];
  struct stat st;           /* the file at the last read attempt (st_ino 0: none yet) */
  int64_t last_read_ms;     /* CLOCK_MONOTONIC of that attempt */
  atomic_llong last_poll_s; /* CLOCK_MONOTONIC second of the last poll */
  atomic_uint gen;          /* bumped whenever keys were added */
  unsigned n_keys;          /* entries in mem */
  char last_problem[256];   /* the last problem logged (not repeated) */
  gh_auth_log_cb *log;
  void *log_arg;
};

static int64_t mono_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
  return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
         a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void kt_log(gh__auth_keytab_t *kt, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void kt_log(gh__auth_keytab_t *kt, int priority, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gh__auth_log(kt->log, kt->log_arg, priority, msg);
}

/* A problem (missing file, bad contents) is logged once, until it changes
 * or a read succeeds. */
static void kt_problem(gh__auth_keytab_t *kt, const char *why, const char *problem)
{
  if (strcmp(problem, kt->last_problem) == 0)
    return;
  snprintf(kt->last_problem, sizeof(kt->last_problem), "%s", problem);
  kt_log(kt, LOG_WARNING, "keytab %s (%s): %s; keeping the %u keys already loaded", kt->path, why,
         problem, kt->n_keys);
}

/* Whether mem already holds this exact key (principal, kvno, enctype and
 * key bytes): the newest entry of that kvno first, a full scan only when
 * it differs (a re-created account reusing a kvno). */
static bool have_entry(gh__auth_keytab_t *kt, const krb5_keytab_entry *ent)
{
  krb5_keytab_entry have;
  krb5_kt_cursor cur;
  bool found = false;

  if (krb5_kt_get_entry(kt->k, kt->mem, ent->principal, ent->vno, ent->key.enctype, &have) != 0)
    return false;
  found = have.key.length == ent->key.length &&
          memcmp(have.key.contents, ent->key.contents, ent->key.length) == 0;
  krb5_free_keytab_entry_contents(kt->k, &have);
  if (found || krb5_kt_start_seq_get(kt->k, kt->mem, &cur) != 0)
    return found;
  while (!found && krb5_kt_next_entry(kt->k, kt->mem, &have, &cur) == 0) {
    found = have.vno == ent->vno && have.key.enctype == ent->key.enctype &&
            have.key.length == ent->key.length &&
            memcmp(have.key.contents, ent->key.contents, ent->key.length) == 0 &&
            krb5_principal_compare(kt->k, have.principal, ent->principal);
    krb5_free_keytab_entry_contents(kt->k, &have);
  }
  krb5_kt_end_seq_get(kt->k, kt->mem, &cur);
  return found;
}

/* The number of complete records in the keytab file (format 0x0502: a
 * 4-byte big-endian length before each record, negative for a hole, 0 or
 * the end of the file after the last), so that MIT is never asked to read
 * a record cut short: its reader leaks the realm and the key of one
 * (krb5 1.20 kt_file.c, the fail: path of internal_read_entry). -1 when
 * the file is not in that format (MIT then says what is wrong).
 * *ret_cut: the records end in one that runs past the end of the file. */
static long complete_records(const char *path, bool *ret_cut)
{
  unsigned char b[4];
  struct stat st;
  off_t pos = 2;
  long n = -1;
  int fd;

  *ret_cut = false;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  if (fstat(fd, &st) != 0 || pread(fd, b, 2, 0) != 2 || b[0] != 5 || b[1] != 2)
    goto out;
  n = 0;
  while (pread(fd, b, 4, pos) == 4) {
    int32_t len = (int32_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
                            (uint32_t)b[3]);
    pos += 4;
    if (len == 0)
      break;
    if (len == INT32_MIN)
      break; /* MIT refuses it */
    if ((len < 0 ? -(off_t)len : (off_t)len) > st.st_size - pos) {
      *ret_cut = len > 0;
      break;
    }
    if (len > 0)
      n++;
    pos += len < 0 ? -(off_t)len : (off_t)len;
  }
out:
  close(fd);
  return n;
}

/* Under lock: reads the file and adds the keys mem lacks. Entries are added
 * as they are read, each one complete (MIT's reader never returns half an
 * entry; a truncated tail reads as the end), so a file caught half-written
 * adds its complete entries and the rest comes with the next read. 0, with
 * *ret_added and a description of the first new key in first (may be
 * ""); or GH_ECONFIG with the reason in err: unreadable, not a keytab,
 * no keys at all (empty, or truncated before the first entry). */
static int kt_read(gh__auth_keytab_t *kt, unsigned *ret_added, char *first, size_t first_len,
                   char *err, size_t err_len)
{
  krb5_keytab file = NULL;
  krb5_kt_cursor cur;
  krb5_keytab_entry ent;
  krb5_error_code kr;
  bool seq = false, cut = false;
  unsigned n = 0, added = 0;
  long limit;
  int ret = 0;

  first[0] = '\0';
  kt->last_read_ms = mono_ms();
  if (stat(kt->path, &kt->st) != 0) {
    snprintf(err, err_len, "%s", strerror(errno));
    memset(&kt->st, 0, sizeof(kt->st));
    ret = GH_ECONFIG;
    goto out;
  }
  if (kt->st.st_size == 0) { /* MIT calls it an unsupported format version */
    snprintf(err, err_len, "the file is empty (caught while being written?)");
    ret = GH_ECONFIG;
    goto out;
  }
  limit = complete_records(kt->path, &cut);
  kr = krb5_kt_resolve(kt->k, kt->path, &file);
  if (kr == 0)
    kr = krb5_kt_start_seq_get(kt->k, file, &cur);
  if (kr == 0)
    seq = true;
  while (kr == 0 && (limit < 0 || n < (unsigned long)limit) &&
         (kr = krb5_kt_next_entry(kt->k, file, &ent, &cur)) == 0) {
    n++;
    if (!have_entry(kt, &ent)) {
      kr = krb5_kt_add_entry(kt->k, kt->mem, &ent);
      if (kr == 0) {
        char *name = NULL;
        if (added++ == 0 && krb5_unparse_name(kt->k, ent.principal, &name) == 0)
          snprintf(first, first_len, "%s kvno %u", name, (unsigned)ent.vno);
        krb5_free_unparsed_name(kt->k, name);
        kt->n_keys++;
      }
    }
    krb5_free_keytab_entry_contents(kt->k, &ent);
  }
  if (kr == 0)
    kr = KRB5_KT_END; /* stopped before a record cut short */
  if (kr == KRB5_KT_END && n == 0) {
    snprintf(err, err_len, "no keys in it (empty, or caught while being written)");
    ret = GH_ECONFIG;
  } else if (kr == KRB5_KT_END && cut) {
    snprintf(err, err_len,
             "its last entry is cut short (caught while being written?); the %u complete "
             "entries before it were read",
             n);
    ret = GH_ECONFIG;
  } else if (kr != KRB5_KT_END) {
    const char *msg = krb5_get_error_message(kt->k, kr);
    snprintf(err, err_len, "%s%s", msg,
             n ? " (the complete entries before the damage were read)" : "");
    krb5_free_error_message(kt->k, msg);
    ret = GH_ECONFIG;
  }
  if (seq)
    krb5_kt_end_seq_get(kt->k, file, &cur);
  if (file)
    krb5_kt_close(kt->k, file);
  if (added > 0)
    atomic_fetch_add(&kt->gen, 1);
out:
  *ret_added = added;
  return ret;
}

/* Under lock: a read for `why`, logged through the callback. */
static void kt_read_logged(gh__auth_keytab_t *kt, const char *why)
{
  char first[320], err[256];
  unsigned added = 0;
  int ret = kt_read(kt, &added, first, sizeof(first), err, sizeof(err));

  if (added > 0)
    kt_log(kt, LOG_INFO, "keytab %s re-read (%s): %u new key%s (%s%s), %u held", kt->path,
           why, added, added > 1 ? "s" : "", first, added > 1 ? ", ..." : "", kt->n_keys);
  if (ret != 0)
    kt_problem(kt, why, err);
  else
    kt->last_problem[0] = '\0';
}

int gh__auth_keytab_new(const char *path, gh_auth_log_cb *log, void *log_arg, char *errbuf,
                        size_t errlen, gh__auth_keytab_t **ret_kt)
{
  gh__auth_keytab_t *kt = gh__calloc(1, sizeof(*kt));
  char first[320], err[256];
  unsigned added;
  int ret = 0;

  if (!kt || !(kt->path = gh__strdup(path))) {
    ret = -ENOMEM;
    goto out;
  }
  pthread_mutex_init(&kt->lock, NULL);
  kt->log = log;
  kt->log_arg = log_arg;
  if (krb5_init_context(&kt->k) != 0) {
    kt->k = NULL;
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  snprintf(kt->mem_name, sizeof(kt->mem_name), "MEMORY:gh-keytab-%ld-%p", (long)getpid(),
           (void *)kt);
  if (krb5_kt_resolve(kt->k, kt->mem_name, &kt->mem) != 0) {
    kt->mem = NULL;
    ret = GH_EAUTH_INTERNAL;
    goto out;
  }
  ret = kt_read(kt, &added, first, sizeof(first), err, sizeof(err));
  if (ret) {
    if (errbuf && errlen)
      snprintf(errbuf, errlen, "keytab %s: %s", path, err);
    goto out;
  }
  atomic_store(&kt->last_poll_s, mono_ms() / 1000);
  *ret_kt = kt;
  kt = NULL;
out:
  gh__auth_keytab_free(kt);
  return ret;
}

void gh__auth_keytab_free(gh__auth_keytab_t *kt)
{
  if (!kt)
    return;
  if (kt->mem)
    krb5_kt_close(kt->k, kt->mem);
  if (kt->k)
    krb5_free_context(kt->k);
  pthread_mutex_destroy(&kt->lock);
  free(kt->path);
  free(kt);
}

const char *gh__auth_keytab_mem_name(const gh__auth_keytab_t *kt)
{
  return kt->mem_name;
}

unsigned gh__auth_keytab_gen(gh__auth_keytab_t *kt)
{
  return atomic_load(&kt->gen);
}

bool gh__auth_keytab_refresh(gh__auth_keytab_t *kt, unsigned gen)
{
  struct stat st;
  bool changed;

  pthread_mutex_lock(&kt->lock);
  if (atomic_load(&kt->gen) == gen) {
    /* nobody added keys since this accept began: read the file if it
     * changed since the last read, or (a rewrite within one timestamp tick
     * looks unchanged) if that read is a second old */
    if (stat(kt->path, &st) != 0) {
      char err[256];
      snprintf(err, sizeof(err), "%s", strerror(errno));
      kt_problem(kt, "a ticket found no key", err);
    } else if (!same_file(&st, &kt->st) || mono_ms() - kt->last_read_ms >= KT_REFRESH_MIN_MS) {
      kt_read_logged(kt, "a ticket found no key");
    }
  }
  changed = atomic_load(&kt->gen) != gen;
  pthread_mutex_unlock(&kt->lock);
  return changed;
}

void gh__auth_keytab_poll(gh__auth_keytab_t *kt)
{
  long long now = mono_ms() / 1000,
            last = atomic_load_explicit(&kt->last_poll_s, memory_order_relaxed);
  struct stat st;

  if (now - last < KT_POLL_S)
    return;
  if (!atomic_compare_exchange_strong(&kt->last_poll_s, &last, now))
    return; /* another thread polls */
  if (pthread_mutex_trylock(&kt->lock) != 0)
    return; /* a read is under way */
  if (stat(kt->path, &st) != 0) {
    char err[256];
    snprintf(err, sizeof(err), "%s", strerror(errno));
    kt_problem(kt, "periodic check", err);
  } else if (!same_file(&st, &kt->st)) {
    kt_read_logged(kt, "periodic check");
  }
  pthread_mutex_unlock(&kt->lock);
}

int gh__auth_keytab_reload(gh__auth_keytab_t *kt, char *msg, size_t msglen)
{
  char first[320], err[256];
  unsigned added = 0;
  int ret;

  pthread_mutex_lock(&kt->lock);
  ret = kt_read(kt, &added, first, sizeof(first), err, sizeof(err));
  if (ret == 0) {
    kt->last_problem[0] = '\0';
    if (added)
      snprintf(msg, msglen, "keytab %s re-read: %u new key%s (%s%s), %u held", kt->path, added,
               added > 1 ? "s" : "", first, added > 1 ? ", ..." : "", kt->n_keys);
    else
      snprintf(msg, msglen, "keytab %s re-read: no new keys, %u held", kt->path, kt->n_keys);
  } else {
    snprintf(kt->last_problem, sizeof(kt->last_problem), "%s", err);
    snprintf(msg, msglen, "keytab %s not re-read: %s; keeping the %u keys already loaded%s",
             kt->path, err, kt->n_keys,
             added ? " (plus the complete new entries before the damage)" : "");
  }
  pthread_mutex_unlock(&kt->lock);
  return ret;
}
