/* rcache_bench.c: replay-cache inserts per second with T threads — the in-memory table, the Redis
 * backend (a pooled connection per thread), and two alternatives measured against it (one
 * mutex-guarded connection, one connection with requests of all threads pipelined). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "httpapi/auth/auth_internal.h"

/*
 * gh-negotiate-bench rcache URL N THREADS
 *   URL: unix:/PATH (the alternatives connect with hiredis' own unix connect)
 *   prints one line per strategy: ops_per_sec and mean microseconds per insert
 */

int gh_bench_rcache(const char *url, long n, int threads);

typedef enum { S_LOCAL, S_POOL, S_MUTEX, S_PIPE } strategy_t;

typedef struct pl_req {
  char key[48];
  int result;
  bool done;
  struct pl_req *next;
} pl_req_t;

typedef struct shared {
  strategy_t s;
  long per_thread;
  gh__auth_rcache_t *rc;
  gh__rcache_redis_t *rr;
  const char *path;
  pthread_mutex_t m;
  pthread_cond_t cv;
  redisContext *c; /* S_MUTEX, S_PIPE */
  pl_req_t *head, **tail;
  bool busy;
  unsigned run;
  atomic_long fails;
} shared_t;

typedef struct targ {
  shared_t *sh;
  int id;
} targ_t;

static double now_s(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int mutex_insert(shared_t *sh, const char *key)
{
  int r = -1;
  pthread_mutex_lock(&sh->m);
  redisReply *rep = redisCommand(sh->c, "SET %s 1 NX PX 660000", key);
  if (rep && (rep->type == REDIS_REPLY_STATUS || rep->type == REDIS_REPLY_NIL))
    r = rep->type == REDIS_REPLY_NIL;
  if (rep)
    freeReplyObject(rep);
  pthread_mutex_unlock(&sh->m);
  return r;
}

/* Flat combining: the first waiter becomes the leader, sends every queued
 * request in one write and reads all replies; the others wait. */
static int pipe_insert(shared_t *sh, const char *key)
{
  pl_req_t me = {.result = -1};
  snprintf(me.key, sizeof(me.key), "%s", key);
  pthread_mutex_lock(&sh->m);
  *sh->tail = &me;
  sh->tail = &me.next;
  while (!me.done) {
    if (sh->busy) {
      pthread_cond_wait(&sh->cv, &sh->m);
      continue;
    }
    sh->busy = true;
    pl_req_t *batch = sh->head;
    sh->head = NULL;
    sh->tail = &sh->head;
    pthread_mutex_unlock(&sh->m);
    for (pl_req_t *q = batch; q; q = q->next)
      redisAppendCommand(sh->c, "SET %s 1 NX PX 660000", q->key);
    for (pl_req_t *q = batch; q; q = q->next) {
      void *v = NULL;
      if (redisGetReply(sh->c, &v) == REDIS_OK && v) {
        redisReply *rep = v;
        q->result = rep->type == REDIS_REPLY_NIL;
        freeReplyObject(rep);
      }
    }
    pthread_mutex_lock(&sh->m);
    for (pl_req_t *q = batch, *next; q; q = next) {
      next = q->next;
      q->done = true;
    }
    sh->busy = false;
    pthread_cond_broadcast(&sh->cv);
  }
  pthread_mutex_unlock(&sh->m);
  return me.result;
}

static void *worker(void *arg)
{
  targ_t *t = arg;
  shared_t *sh = t->sh;
  uint8_t tag[GH__RCACHE_TAG_LEN];
  char key[48];

  for (long i = 0; i < sh->per_thread; i++) {
    int r;
    memset(tag, 0, sizeof(tag));
    memcpy(tag, &i, sizeof(i));
    tag[8] = (uint8_t)t->id;
    tag[9] = (uint8_t)sh->s;
    tag[10] = (uint8_t)sh->run;
    tag[11] = (uint8_t)getpid();
    switch (sh->s) {
    case S_LOCAL:
      r = gh__auth_rcache_insert(sh->rc, tag);
      break;
    case S_POOL:
      r = gh__rcache_redis_insert(sh->rr, tag, 660);
      break;
    default:
      snprintf(key, sizeof(key), "gh:bench:%d:%d:%u:%d:%ld", (int)getpid(), (int)sh->s, sh->run,
               t->id, i);
      r = sh->s == S_MUTEX ? mutex_insert(sh, key) : pipe_insert(sh, key);
    }
    if (r != 0)
      atomic_fetch_add(&sh->fails, 1);
  }
  return NULL;
}

static void run(shared_t *sh, strategy_t s, long n, int threads, const char *name)
{
  pthread_t tid[256];
  targ_t ta[256];
  double t0;

  sh->s = s;
  sh->per_thread = n / threads;
  sh->run++;
  atomic_store(&sh->fails, 0);
  t0 = now_s();
  for (int i = 0; i < threads; i++) {
    ta[i] = (targ_t){sh, i};
    pthread_create(&tid[i], NULL, worker, &ta[i]);
  }
  for (int i = 0; i < threads; i++)
    pthread_join(tid[i], NULL);
  double secs = now_s() - t0;
  long done = sh->per_thread * threads;
  printf("mode=rcache strategy=%s threads=%d inserts=%ld fails=%ld seconds=%.3f "
         "ops_per_sec=%.0f us_per_insert_per_thread=%.2f\n",
         name, threads, done, atomic_load(&sh->fails), secs, done / secs,
         secs * 1e6 * threads / (double)done);
  fflush(stdout);
}

int gh_bench_rcache(const char *url, long n, int threads)
{
  shared_t sh;
  gh__rcache_redis_config_t cfg = {url, NULL, false, 1000, NULL, NULL};

  if (threads < 1 || threads > 256 || strncmp(url, "unix:", 5) != 0) {
    fprintf(stderr, "rcache: URL must be unix:/PATH, 1..256 threads\n");
    return 2;
  }
  memset(&sh, 0, sizeof(sh));
  pthread_mutex_init(&sh.m, NULL);
  pthread_cond_init(&sh.cv, NULL);
  sh.tail = &sh.head;
  if (gh__auth_rcache_new(660, &sh.rc) != 0 || gh__rcache_redis_new(&cfg, NULL, 0, &sh.rr) != 0)
    return 1;
  sh.c = redisConnectUnix(url + 5);
  if (!sh.c || sh.c->err) {
    fprintf(stderr, "rcache: cannot connect to %s\n", url);
    return 1;
  }
  run(&sh, S_LOCAL, n, threads, "local-table");
  run(&sh, S_POOL, n, threads, "redis-pool(gatehouse)");
  run(&sh, S_MUTEX, n, threads, "redis-one-conn-mutex");
  run(&sh, S_PIPE, n, threads, "redis-one-conn-pipelined");
  run(&sh, S_POOL, n, threads, "redis-pool(gatehouse)");
  redisFree(sh.c);
  gh__rcache_redis_free(sh.rr);
  gh__auth_rcache_free(sh.rc);
  return 0;
}
