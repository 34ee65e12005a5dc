/* auth_rcache.c: in-memory Kerberos replay cache: a strict DER walker that finds the AP-REQ authenticator ciphertext in a token, and a sharded table of salted hashes of it. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gatehouse/error.h"
#include "httpapi/auth/auth_internal.h"
#include "util/alloc.h"

/* ---- strict DER walker ----
 * Why strict: the cache is sound only if the ciphertext found here is the
 * one MIT decrypts. On strict DER (one-byte tags, minimal definite lengths,
 * every field in its place, nothing trailing) MIT's decoder has exactly one
 * reading, so the two agree; anything else is refused before GSS sees it. */

typedef struct der {
  const uint8_t *p, *end;
} der_t;

/* Reads one TLV with a one-byte tag; *ret_c is its contents. 0 or -1. */
static int der_tlv(der_t *d, uint8_t *ret_tag, der_t *ret_c)
{
  size_t n, avail;
  uint8_t tag, l;

  if (d->end - d->p < 2)
    return -1;
  tag = d->p[0];
  if ((tag & 0x1f) == 0x1f) /* high-tag-number form: never DER for our tags */
    return -1;
  l = d->p[1];
  d->p += 2;
  if (l < 0x80) {
    n = l;
  } else {
    unsigned k = l & 0x7f;
    if (k == 0 || k > 3 || (size_t)(d->end - d->p) < k || d->p[0] == 0)
      return -1; /* indefinite, too long, or a leading zero octet */
    n = 0;
    for (unsigned i = 0; i < k; i++)
      n = (n << 8) | d->p[i];
    d->p += k;
    if (n < 0x80 || (k == 2 && n < 0x100) || (k == 3 && n < 0x10000))
      return -1; /* not minimal */
  }
  avail = (size_t)(d->end - d->p);
  if (n > avail)
    return -1;
  *ret_tag = tag;
  ret_c->p = d->p;
  ret_c->end = d->p + n;
  d->p += n;
  return 0;
}

/* The next TLV must have this tag. */
static int der_expect(der_t *d, uint8_t tag, der_t *ret_c)
{
  uint8_t t;

  if (d->p >= d->end || d->p[0] != tag)
    return -1;
  return der_tlv(d, &t, ret_c);
}

/* An explicit [n] tag holding exactly one TLV of tag `inner`. */
static int der_explicit(der_t *d, uint8_t ctx_tag, uint8_t inner, der_t *ret_c)
{
  der_t e;

  if (der_expect(d, ctx_tag, &e) != 0 || der_expect(&e, inner, ret_c) != 0 || e.p != e.end)
    return -1;
  return 0;
}

static bool der_optional(const der_t *d, uint8_t tag)
{
  return d->p < d->end && d->p[0] == tag;
}

/* What the walk found: the authenticator ciphertext, the AP-REQ around
 * it, and the token the krb5 mechanism is given. */
typedef struct spans {
  der_t cipher, ap_req, mech;
} spans_t;

/* AP-REQ ::= [APPLICATION 14] SEQUENCE { [0] pvno, [1] msg-type, [2] ap-options,
 *   [3] ticket, [4] authenticator EncryptedData }; EncryptedData ::= SEQUENCE {
 *   [0] etype, [1] kvno OPTIONAL, [2] cipher OCTET STRING }. The whole input. */
static int walk_ap_req(der_t d, der_t *ret_cipher, der_t *ret_ap_req)
{
  der_t app, seq, f, ed, x;

  *ret_ap_req = d;
  if (der_expect(&d, 0x6e, &app) != 0 || d.p != d.end)
    return -1;
  if (der_expect(&app, 0x30, &seq) != 0 || app.p != app.end)
    return -1;
  if (der_explicit(&seq, 0xa0, 0x02, &f) != 0 || der_explicit(&seq, 0xa1, 0x02, &f) != 0 ||
      der_explicit(&seq, 0xa2, 0x03, &f) != 0 || der_explicit(&seq, 0xa3, 0x61, &f) != 0 ||
      der_explicit(&seq, 0xa4, 0x30, &ed) != 0 || seq.p != seq.end)
    return -1;
  if (der_explicit(&ed, 0xa0, 0x02, &x) != 0)
    return -1;
  if (der_optional(&ed, 0xa1) && der_explicit(&ed, 0xa1, 0x02, &x) != 0)
    return -1;
  if (der_explicit(&ed, 0xa2, 0x04, ret_cipher) != 0 || ed.p != ed.end)
    return -1;
  return 0;
}

/* The OIDs under which MIT's krb5 mechanism takes a token: krb5, the
 * Microsoft variant, the pre-RFC one. */
static const uint8_t oid_krb5[] = { 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02 };
static const uint8_t oid_krb5_ms[] = { 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02 };
static const uint8_t oid_krb5_old[] = { 0x2b, 0x05, 0x01, 0x05, 0x02 };
static const uint8_t oid_spnego[] = { 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02 };

static bool oid_is(der_t o, const uint8_t *v, size_t n)
{
  return (size_t)(o.end - o.p) == n && memcmp(o.p, v, n) == 0;
}

static bool oid_is_krb5(der_t o)
{
  return oid_is(o, oid_krb5, sizeof(oid_krb5)) || oid_is(o, oid_krb5_ms, sizeof(oid_krb5_ms)) ||
         oid_is(o, oid_krb5_old, sizeof(oid_krb5_old));
}

static bool is_ntlmssp(der_t d)
{
  return d.end - d.p >= 8 && memcmp(d.p, "NTLMSSP", 8) == 0;
}

/* A token that the krb5 mechanism may be given (top level, or a SPNEGO
 * mechanism token): a raw AP-REQ, or one in the GSS framing with a krb5
 * OID and TOK_ID 01 00. 1 with the ciphertext, or -1. */
static int walk_krb5(der_t d, spans_t *sp)
{
  der_t outer, oid;

  sp->mech = d;
  if (d.p < d.end && d.p[0] == 0x6e)
    return walk_ap_req(d, &sp->cipher, &sp->ap_req) == 0 ? 1 : -1;
  if (der_expect(&d, 0x60, &outer) != 0 || d.p != d.end)
    return -1;
  if (der_expect(&outer, 0x06, &oid) != 0 || !oid_is_krb5(oid))
    return -1;
  if (outer.end - outer.p < 2 || outer.p[0] != 0x01 || outer.p[1] != 0x00)
    return -1;
  outer.p += 2;
  return walk_ap_req(outer, &sp->cipher, &sp->ap_req) == 0 ? 1 : -1;
}

/* A SPNEGO mechanism token: NTLMSSP (never an AP-REQ, see auth.md) → 0,
 * a Kerberos token → 1, anything else → -1. */
static int walk_mech_token(der_t m, spans_t *sp)
{
  if (is_ntlmssp(m))
    return 0;
  return walk_krb5(m, sp);
}

/* NegTokenInit ::= SEQUENCE { [0] mechTypes, [1] reqFlags OPTIONAL,
 *   [2] mechToken OCTET STRING OPTIONAL, [3] mechListMIC OPTIONAL }. */
static int walk_neg_init(der_t d, spans_t *sp)
{
  der_t seq, f, tok;

  if (der_expect(&d, 0x30, &seq) != 0 || d.p != d.end)
    return -1;
  if (der_explicit(&seq, 0xa0, 0x30, &f) != 0)
    return -1;
  while (f.p < f.end) { /* a well-formed list of OIDs */
    der_t oid;
    if (der_expect(&f, 0x06, &oid) != 0)
      return -1;
  }
  if (der_optional(&seq, 0xa1) && der_explicit(&seq, 0xa1, 0x03, &f) != 0)
    return -1;
  if (!der_optional(&seq, 0xa2)) {
    if (der_optional(&seq, 0xa3) && der_explicit(&seq, 0xa3, 0x04, &f) != 0)
      return -1;
    return seq.p == seq.end ? 0 : -1;
  }
  if (der_explicit(&seq, 0xa2, 0x04, &tok) != 0)
    return -1;
  if (der_optional(&seq, 0xa3) && der_explicit(&seq, 0xa3, 0x04, &f) != 0)
    return -1;
  if (seq.p != seq.end)
    return -1;
  return walk_mech_token(tok, sp);
}

/* NegTokenResp ::= [1] SEQUENCE { [0] negState OPTIONAL, [1] supportedMech
 *   OPTIONAL, [2] responseToken OPTIONAL, [3] mechListMIC OPTIONAL }. */
static int walk_neg_resp(der_t d, spans_t *sp)
{
  der_t seq, f, tok = { NULL, NULL };
  bool have = false;

  if (der_explicit(&d, 0xa1, 0x30, &seq) != 0 || d.p != d.end)
    return -1;
  if (der_optional(&seq, 0xa0) && der_explicit(&seq, 0xa0, 0x0a, &f) != 0)
    return -1;
  if (der_optional(&seq, 0xa1) && der_explicit(&seq, 0xa1, 0x06, &f) != 0)
    return -1;
  if (der_optional(&seq, 0xa2)) {
    if (der_explicit(&seq, 0xa2, 0x04, &tok) != 0)
      return -1;
    have = true;
  }
  if (der_optional(&seq, 0xa3) && der_explicit(&seq, 0xa3, 0x04, &f) != 0)
    return -1;
  if (seq.p != seq.end)
    return -1;
  return have ? walk_mech_token(tok, sp) : 0;
}

int gh__krb5_find_ap_req(const void *token, size_t len, gh__krb5_ap_req_t *ret)
{
  der_t d = {token, (const uint8_t *)token + len}, outer, oid;
  spans_t sp;
  int ret_code = -1;

  memset(&sp, 0, sizeof(sp));
  if (len == 0)
    goto out;
  if (is_ntlmssp(d)) {
    ret_code = 0;
  } else if (d.p[0] == 0x6e) {
    ret_code = walk_krb5(d, &sp);
  } else if (d.p[0] == 0xa1) {
    ret_code = walk_neg_resp(d, &sp);
  } else if (d.p[0] == 0x60) {
    der_t t = d;
    if (der_expect(&t, 0x60, &outer) != 0 || t.p != t.end ||
        der_expect(&outer, 0x06, &oid) != 0)
      goto out;
    if (oid_is_krb5(oid)) {
      ret_code = walk_krb5(d, &sp);
    } else if (oid_is(oid, oid_spnego, sizeof(oid_spnego))) {
      der_t init;
      if (der_expect(&outer, 0xa0, &init) != 0 || outer.p != outer.end)
        goto out;
      ret_code = walk_neg_init(init, &sp);
    }
  }
  if (ret_code == 1) {
    ret->cipher = sp.cipher.p;
    ret->cipher_len = (size_t)(sp.cipher.end - sp.cipher.p);
    ret->ap_req = sp.ap_req.p;
    ret->ap_req_len = (size_t)(sp.ap_req.end - sp.ap_req.p);
    ret->mech = sp.mech.p;
    ret->mech_len = (size_t)(sp.mech.end - sp.mech.p);
  }
out:
  return ret_code < 0 ? GH_EPARSE : ret_code;
}

int gh__krb5_find_authenticator(const void *token, size_t len, const uint8_t **ret_cipher,
                                size_t *ret_cipher_len)
{
  gh__krb5_ap_req_t ap;
  int ret = gh__krb5_find_ap_req(token, len, &ap);

  if (ret == 1) {
    *ret_cipher = ap.cipher;
    *ret_cipher_len = ap.cipher_len;
  }
  return ret;
}

/* ---- the table ----
 * 32 shards, each an open-addressing table (linear probing, backward-shift
 * deletion) of 12-byte tags with the wall-clock second of insertion. A tag
 * is SHA-256(salt || ciphertext), the salt random per process, so nobody
 * can aim entries at one bucket. An entry is dropped once it is older than
 * the window (2 x clockskew + 60 s): by then MIT's clock-skew check refuses
 * the authenticator on its own.
 *
 * Memory follows the live entries both ways: a shard grows (doubling) when
 * it is 3/4 full of live entries, and at most every RC_SWEEP_S seconds an
 * insert sweeps its shard, dropping expired entries and shrinking the table
 * to fit what is left (at least twice the live count), so after a burst the
 * tables return to their size at rest within one window.
 *
 * Shared mode (gh__auth_rcache_new_shared, for a server whose worker
 * processes are forked after the engine is made): the struct lives in a
 * MAP_SHARED mapping, its locks are process-shared and robust, and each
 * shard's table is one of two halves of a reserved MAP_SHARED|MAP_NORESERVE
 * region of RC_MAX_CAP slots each (a rebuild writes the other half, then
 * gives the old one's pages back with MADV_REMOVE). Every process sees the
 * tables at the same addresses because they were mapped before the fork.
 * A process that dies holding a shard lock leaves the table consistent: an
 * insert writes its tag before making the slot live, a rebuild switches
 * tables only after the new one is complete. */

#define RC_SHARDS 32u
#define RC_TAG 12u
#define RC_MIN_CAP 1024u
#define RC_MAX_CAP (1u << 19) /* slots per shard: 32 x 512 Ki x 16 B = 256 MiB at most */
#define RC_SWEEP_S 30u

typedef struct rc_ent {
  uint8_t tag[RC_TAG];
  uint32_t t; /* 0 = empty */
} rc_ent_t;

typedef struct rc_shard {
  pthread_mutex_t lock;
  rc_ent_t *tab;
  size_t cap, n;
  uint32_t last_sweep; /* wall-clock second of the last sweep */
} rc_shard_t;

struct gh__auth_rcache {
  rc_shard_t sh[RC_SHARDS];
  uint8_t salt[32];
  EVP_MD *md; /* each process's own copy, at the same address after fork */
  atomic_uint window_s;
  rc_ent_t *pool; /* shared mode: RC_SHARDS x 2 halves x RC_MAX_CAP slots */
  pid_t creator;  /* shared mode: the process that may destroy it */
  /* the farm's store (replay_cache = redis://...): set before any fork,
   * then read-only; each process has its own copy of what it points to */
  gh__rcache_redis_t *redis;
};

#define RC_HALF_BYTES ((size_t)RC_MAX_CAP * sizeof(rc_ent_t))
#define RC_POOL_BYTES ((size_t)RC_SHARDS * 2 * RC_HALF_BYTES)

static int rc_init(gh__auth_rcache_t *rc, unsigned window_s)
{
  pthread_mutexattr_t ma;
  int ret = 0;

  pthread_mutexattr_init(&ma);
  if (rc->pool != NULL) {
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  }
  for (unsigned i = 0; i < RC_SHARDS; i++)
    pthread_mutex_init(&rc->sh[i].lock, &ma);
  pthread_mutexattr_destroy(&ma);
  atomic_init(&rc->window_s, window_s);
  rc->md = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!rc->md || RAND_bytes(rc->salt, sizeof(rc->salt)) != 1)
    ret = GH_EAUTH_INTERNAL;
  return ret;
}

int gh__auth_rcache_new(unsigned window_s, gh__auth_rcache_t **ret_rc)
{
  gh__auth_rcache_t *rc = gh__calloc(1, sizeof(*rc));
  int ret = 0;

  if (!rc) {
    ret = -ENOMEM;
    goto out;
  }
  ret = rc_init(rc, window_s);
  if (ret)
    goto out;
  *ret_rc = rc;
  rc = NULL;
out:
  gh__auth_rcache_free(rc);
  return ret;
}

int gh__auth_rcache_new_shared(unsigned window_s, gh__auth_rcache_t **ret_rc)
{
  gh__auth_rcache_t *rc = MAP_FAILED;
  void *pool = MAP_FAILED;
  int ret = 0;

  rc = mmap(NULL, sizeof(*rc), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pool = mmap(NULL, RC_POOL_BYTES, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (rc == MAP_FAILED || pool == MAP_FAILED) {
    ret = -ENOMEM;
    goto out;
  }
  rc->pool = pool; /* zero-filled, like calloc */
  pool = MAP_FAILED;
  rc->creator = getpid();
  ret = rc_init(rc, window_s);
  if (ret)
    goto out;
  *ret_rc = rc;
  rc = MAP_FAILED;
out:
  if (pool != MAP_FAILED)
    munmap(pool, RC_POOL_BYTES);
  if (rc != MAP_FAILED)
    gh__auth_rcache_free(rc);
  return ret;
}

void gh__auth_rcache_free(gh__auth_rcache_t *rc)
{
  if (!rc)
    return;
  gh__rcache_redis_free(rc->redis);
  EVP_MD_free(rc->md);
  if (rc->pool != NULL) {
    /* Other processes may still use it: only the creator destroys the
     * locks (after its children are gone); everyone unmaps. */
    if (rc->creator == getpid()) {
      for (unsigned i = 0; i < RC_SHARDS; i++)
        pthread_mutex_destroy(&rc->sh[i].lock);
      explicit_bzero(rc->salt, sizeof(rc->salt));
    }
    munmap(rc->pool, RC_POOL_BYTES);
    munmap(rc, sizeof(*rc));
    return;
  }
  for (unsigned i = 0; i < RC_SHARDS; i++) {
    free(rc->sh[i].tab);
    pthread_mutex_destroy(&rc->sh[i].lock);
  }
  explicit_bzero(rc->salt, sizeof(rc->salt));
  free(rc);
}

/* A zeroed table of cap slots for shard s: heap, or in shared mode the half
 * of the shard's reservation that the current table does not use. */
static rc_ent_t *tab_alloc(gh__auth_rcache_t *rc, rc_shard_t *s, size_t cap)
{
  if (rc->pool == NULL)
    return gh__calloc(cap, sizeof(rc_ent_t));
  rc_ent_t *h0 = rc->pool + (size_t)(s - rc->sh) * 2 * RC_MAX_CAP;
  return s->tab == h0 ? h0 + RC_MAX_CAP : h0;
}

/* Gives a table's memory back. In shared mode the half reads as zeroes
 * again afterwards, ready for the next rebuild. */
static void tab_free(gh__auth_rcache_t *rc, rc_ent_t *tab, size_t cap)
{
  if (rc->pool == NULL) {
    free(tab);
  } else if (tab != NULL) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (cap * sizeof(rc_ent_t) + pg - 1) / pg * pg;
    if (madvise(tab, len, MADV_REMOVE) != 0)
      memset(tab, 0, cap * sizeof(rc_ent_t));
  }
}

static void shard_lock(gh__auth_rcache_t *rc, rc_shard_t *s)
{
  /* EOWNERDEAD: a process died holding it. The live table is consistent
   * (see above; the entry count at worst one off until the next sweep);
   * the other half may hold a rebuild cut short: zero it. */
  if (pthread_mutex_lock(&s->lock) == EOWNERDEAD) {
    rc_ent_t *h0 = rc->pool + (size_t)(s - rc->sh) * 2 * RC_MAX_CAP;
    tab_free(rc, s->tab == h0 ? h0 + RC_MAX_CAP : h0, RC_MAX_CAP);
    pthread_mutex_consistent(&s->lock);
  }
}

void gh__auth_rcache_widen(gh__auth_rcache_t *rc, unsigned window_s)
{
  unsigned cur = atomic_load(&rc->window_s);

  while (window_s > cur && !atomic_compare_exchange_weak(&rc->window_s, &cur, window_s))
    ;
}

int gh__auth_rcache_tag(gh__auth_rcache_t *rc, const uint8_t *cipher, size_t len,
                        uint8_t ret_tag[GH__RCACHE_TAG_LEN])
{
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ret = GH_EAUTH_INTERNAL;

  /* with Redis the tag must be the same on every node: no per-process
   * salt, a fixed prefix instead (see auth.md "Replay across nodes") */
  static const char farm[] = "gatehouse replay cache v1";
  const void *salt = rc->redis ? (const void *)farm : (const void *)rc->salt;
  size_t salt_len = rc->redis ? sizeof(farm) : sizeof(rc->salt);

  if (ctx && EVP_DigestInit_ex(ctx, rc->md, NULL) == 1 &&
      EVP_DigestUpdate(ctx, salt, salt_len) == 1 &&
      EVP_DigestUpdate(ctx, cipher, len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
      mdlen >= GH__RCACHE_TAG_LEN) {
    memcpy(ret_tag, md, GH__RCACHE_TAG_LEN);
    ret = 0;
  }
  EVP_MD_CTX_free(ctx);
  return ret;
}

static size_t slot_of(const uint8_t *tag, size_t cap)
{
  uint64_t h;

  memcpy(&h, tag + 1, sizeof(h));
  return (size_t)h & (cap - 1);
}

static bool expired(const rc_ent_t *e, uint32_t now, unsigned window)
{
  return (int64_t)now - (int64_t)e->t > (int64_t)window;
}

/* Rebuilds the shard into a table of new_cap slots, dropping expired entries. */
static int rebuild(gh__auth_rcache_t *rc, rc_shard_t *s, size_t new_cap, uint32_t now,
                   unsigned window)
{
  rc_ent_t *t = tab_alloc(rc, s, new_cap);
  rc_ent_t *old = s->tab;
  size_t n = 0;

  if (!t)
    return -ENOMEM;
  for (size_t i = 0; i < s->cap; i++) {
    const rc_ent_t *e = &s->tab[i];
    if (e->t == 0 || expired(e, now, window))
      continue;
    size_t j = slot_of(e->tag, new_cap);
    while (t[j].t != 0)
      j = (j + 1) & (new_cap - 1);
    t[j] = *e;
    n++;
  }
  size_t old_cap = s->cap;
  s->tab = t;
  s->cap = new_cap;
  s->n = n;
  tab_free(rc, old, old_cap);
  return 0;
}

/* The smallest table that holds `live` entries at most half full. */
static size_t fit_cap(size_t live)
{
  size_t cap = RC_MIN_CAP;
  while (cap < RC_MAX_CAP && (live + 1) * 2 > cap)
    cap *= 2;
  return cap;
}

/* Drops expired entries and shrinks the shard when it is at most a quarter
 * used by live ones. A failed allocation keeps the old table (still correct). */
static void sweep(gh__auth_rcache_t *rc, rc_shard_t *s, uint32_t now, unsigned window)
{
  size_t live = 0;
  s->last_sweep = now;
  if (s->cap == 0)
    return;
  for (size_t i = 0; i < s->cap; i++)
    live += s->tab[i].t != 0 && !expired(&s->tab[i], now, window);
  if (fit_cap(live) < s->cap || live * 4 < s->n * 3)
    (void)rebuild(rc, s, fit_cap(live) < s->cap ? fit_cap(live) : s->cap, now, window);
}

int gh__auth_rcache_insert_at(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN],
                              uint32_t now)
{
  rc_shard_t *s = &rc->sh[tag[0] % RC_SHARDS];
  unsigned window = atomic_load(&rc->window_s);
  int ret = 0;

  shard_lock(rc, s);
  if (s->cap != 0 && now - s->last_sweep >= RC_SWEEP_S)
    sweep(rc, s, now, window);
  if (s->cap == 0 || (s->n + 1) * 4 > s->cap * 3) {
    size_t cap = s->cap ? s->cap : RC_MIN_CAP;
    if (s->cap) {
      ret = rebuild(rc, s, cap, now, window); /* drop the expired first */
      if (ret == 0 && (s->n + 1) * 2 > cap) {
        if (cap < RC_MAX_CAP)
          ret = rebuild(rc, s, cap * 2, now, window);
        else if ((s->n + 1) * 4 > cap * 3)
          ret = GH_ELIMIT; /* full of live entries: refuse rather than forget */
      }
    } else {
      ret = rebuild(rc, s, cap, now, window);
      s->last_sweep = now;
    }
    if (ret)
      goto out;
  }
  for (size_t i = slot_of(tag, s->cap);; i = (i + 1) & (s->cap - 1)) {
    rc_ent_t *e = &s->tab[i];
    if (e->t == 0) {
      memcpy(e->tag, tag, RC_TAG); /* the tag first: t != 0 makes it live */
      atomic_signal_fence(memory_order_release);
      e->t = now;
      s->n++;
      break;
    }
    if (memcmp(e->tag, tag, RC_TAG) == 0) {
      if (!expired(e, now, window)) {
        ret = GH__RCACHE_REPLAY;
        goto out;
      }
      e->t = now;
      break;
    }
  }
out:
  pthread_mutex_unlock(&s->lock);
  return ret;
}

static void remove_local(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN]);

int gh__auth_rcache_insert(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN])
{
  time_t wall = time(NULL);
  int ret = gh__auth_rcache_insert_at(rc, tag, wall > 0 ? (uint32_t)wall : 1);

  if (ret == 0 && rc->redis) {
    /* new here: ask the farm. A replay there keeps the local entry too. */
    int r = gh__rcache_redis_insert(rc->redis, tag, atomic_load(&rc->window_s));
    if (r == GH__RCACHE_REPLAY) {
      ret = r;
    } else if (r < 0) {
      remove_local(rc, tag); /* fail closed: nothing was accepted */
      ret = r;
    } /* 0, or GH__RCACHE_LOCAL_ONLY: the local entry decides */
  }
  return ret;
}

int gh__auth_rcache_attach_redis(gh__auth_rcache_t *rc, const gh__rcache_redis_config_t *cfg,
                                 char *errbuf, size_t errlen)
{
  if (rc->redis)
    return GH_ESTATE;
  return gh__rcache_redis_new(cfg, errbuf, errlen, &rc->redis);
}

size_t gh__auth_rcache_slots(gh__auth_rcache_t *rc, size_t *ret_entries)
{
  size_t slots = 0, n = 0;
  for (unsigned i = 0; i < RC_SHARDS; i++) {
    shard_lock(rc, &rc->sh[i]);
    slots += rc->sh[i].cap;
    n += rc->sh[i].n;
    pthread_mutex_unlock(&rc->sh[i].lock);
  }
  if (ret_entries)
    *ret_entries = n;
  return slots;
}

void gh__auth_rcache_remove(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN])
{
  remove_local(rc, tag);
  if (rc->redis)
    gh__rcache_redis_remove(rc->redis, tag);
}

static void remove_local(gh__auth_rcache_t *rc, const uint8_t tag[GH__RCACHE_TAG_LEN])
{
  rc_shard_t *s = &rc->sh[tag[0] % RC_SHARDS];
  size_t i;

  shard_lock(rc, s);
  if (s->cap == 0)
    goto out;
  for (i = slot_of(tag, s->cap); s->tab[i].t != 0; i = (i + 1) & (s->cap - 1)) {
    if (memcmp(s->tab[i].tag, tag, RC_TAG) == 0)
      break;
  }
  if (s->tab[i].t == 0)
    goto out;
  /* backward-shift deletion keeps every probe chain unbroken */
  for (size_t j = (i + 1) & (s->cap - 1); s->tab[j].t != 0; j = (j + 1) & (s->cap - 1)) {
    size_t home = slot_of(s->tab[j].tag, s->cap);
    /* move j into the hole at i unless its home lies cyclically in (i, j] */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      s->tab[i] = s->tab[j];
      i = j;
    }
  }
  memset(&s->tab[i], 0, sizeof(s->tab[i]));
  s->n--;
out:
  pthread_mutex_unlock(&s->lock);
}

/* Tests: stands for a process killed in the middle of rebuilds, holding
 * every shard lock with a half-written spare table. */
void gh__auth_rcache_die_locked_for_test(gh__auth_rcache_t *rc)
{
  for (unsigned i = 0; i < RC_SHARDS; i++) {
    rc_shard_t *s = &rc->sh[i];
    shard_lock(rc, s);
    if (rc->pool != NULL) {
      rc_ent_t *spare = tab_alloc(rc, s, RC_MIN_CAP);
      memset(spare, 0xa5, 4 * sizeof(*spare));
    }
  }
}

/* Tests: whether shard i's spare half reads as zeroes. */
bool gh__auth_rcache_spare_clean_for_test(gh__auth_rcache_t *rc, unsigned i)
{
  rc_shard_t *s = &rc->sh[i % RC_SHARDS];
  bool clean = true;
  shard_lock(rc, s);
  if (rc->pool != NULL) {
    const rc_ent_t *spare = tab_alloc(rc, s, RC_MIN_CAP);
    for (size_t k = 0; k < RC_MIN_CAP && clean; k++)
      clean = spare[k].t == 0 && spare[k].tag[0] == 0;
  }
  pthread_mutex_unlock(&s->lock);
  return clean;
}
