/* alloclab's allocation recorder: an LD_PRELOAD library.

   Build: cc -shared -fPIC -O2 -o librec.so recorder.c -ldl -lpthread
   Use:   ALLOCLAB_REC_FILE=out.rec LD_PRELOAD=./librec.so CMD ARGS...
   (workloads/recorder.py does both; `alloclab trace record -o OUT -- CMD ARGS`.)

   What it logs. malloc, calloc, realloc, reallocarray, free, posix_memalign,
   aligned_alloc, memalign, valloc and pvalloc are interposed; the real
   functions come from dlsym(RTLD_NEXT). Each call the program makes is one
   fixed-size record (struct rec below) with the calling thread's id; calls the
   allocator makes into itself (and calls made while a record is being
   written) are not logged: a thread-local guard forwards them untouched.

   File format (little-endian, native layout of x86_64/aarch64 Linux):
       header  32 B: "ALLOCREC", u32 version (1), u32 record size (32),
                     u32 pid, u32 ppid, u64 0
       records 32 B: u16 op, u16 0, u32 thread id (0, 1, ... by first call),
                     u64 size, u64 arg, u64 result
   ops:  1 malloc(size)                    -> result
         2 calloc(arg = nmemb, size = total bytes, 0 on overflow) -> result
         3 realloc(arg = old ptr, size)     -> result (reallocarray: size = total)
         4 free(arg = ptr)
         5 posix_memalign(arg = alignment, size) -> result (0 if it failed)
         6 aligned_alloc(arg = alignment, size) -> result
         7 memalign / valloc / pvalloc (arg = alignment, size) -> result

   Order. Records go, under one mutex, into one process-wide buffer, so the
   file is the order in which the calls were logged. A free is logged *before*
   the real free, an allocation *after* the real call returns, and a realloc
   holds the mutex across the real call: so an address is never logged as
   handed out again before the record that gave it back (another thread cannot
   log the reuse of an address that is still live in the file). The price is
   that reallocs of different threads are serialised while recording.

   Flushing. The buffer is written with write(2) when full, at exit (a
   destructor) and at fork. After the exit flush every later call (other
   libraries' destructors) is written through unbuffered, so the file holds
   everything up to _exit. A process that dies by a signal or calls _exit
   loses the records still in its buffer (at most BUF_RECS).

   Processes. The first process that finds no file at ALLOCLAB_REC_FILE creates
   it (O_EXCL); any other process that inherits the environment (a forked
   child, or a program the recorded one execs) records to its own file,
   ALLOCLAB_REC_FILE.<pid>, truncated when it opens it (an exec'd image reuses
   its forked parent's pid and replaces that file). At fork the child drops the
   parent's buffered records (the parent writes them) and starts its own file.

   Bootstrap. dlsym may call calloc before the real calloc is known; such
   calls are served from a small static buffer that free() recognises and
   ignores. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_VERSION 1
#define BUF_RECS 32768
#define ENV_NAME "ALLOCLAB_REC_FILE"

enum { OP_MALLOC = 1, OP_CALLOC, OP_REALLOC, OP_FREE, OP_POSIX_MEMALIGN, OP_ALIGNED_ALLOC, OP_MEMALIGN };

struct header { char magic[8]; uint32_t version, rec_size, pid, ppid; uint64_t reserved; };
struct rec { uint16_t op, pad; uint32_t tid; uint64_t size, arg, result; };
_Static_assert(sizeof(struct header) == 32, "header is 32 bytes");
_Static_assert(sizeof(struct rec) == 32, "record is 32 bytes");

#define TLS __thread __attribute__((tls_model("initial-exec")))

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_reallocarray)(void *, size_t, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rec buf[BUF_RECS];
static size_t nbuf;
static int fd = -1;
static int state;            /* 0 not started, 1 initialising, 2 recording, 3 after the exit flush, 4 off */
static uint32_t next_tid;
static char path[4096];

static TLS int guard;        /* > 0: inside the recorder or the real allocator: do not log */
static TLS int64_t my_tid = -1;

/* dlsym's own allocations before the real functions are known */
static char boot[8192] __attribute__((aligned(16)));
static size_t boot_used;

static int in_boot(const void *p) { return (const char *)p >= boot && (const char *)p < boot + sizeof boot; }

static void *boot_alloc(size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot) return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;   /* static storage starts zeroed and is never reused: fine for calloc */
}

static void write_all(const void *p, size_t n) {
    const char *c = p;
    while (n > 0 && fd >= 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            close(fd);      /* disk full or closed under us: stop recording, keep the program running */
            fd = -1;
            state = 4;
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

static void flush_locked(void) {
    if (nbuf) write_all(buf, nbuf * sizeof(struct rec));
    nbuf = 0;
}

static void open_file(int own) {
    char name[4200];
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    if (own) {
        /* a process other than the first: its own file */
        size_t len = strlen(path);
        memcpy(name, path, len);
        name[len] = '.';
        char digits[16];
        int nd = 0;
        unsigned pid = (unsigned)getpid();
        do { digits[nd++] = (char)('0' + pid % 10); pid /= 10; } while (pid);
        for (int i = 0; i < nd; i++) name[len + 1 + i] = digits[nd - 1 - i];
        name[len + 1 + nd] = 0;
        fd = open(name, flags | O_TRUNC, 0644);
    } else {
        fd = open(path, flags | O_EXCL, 0644);
        if (fd < 0 && errno == EEXIST) {
            open_file(1);
            return;
        }
    }
    if (fd < 0) {
        state = 4;
        return;
    }
    struct header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, "ALLOCREC", 8);
    h.version = REC_VERSION;
    h.rec_size = sizeof(struct rec);
    h.pid = (uint32_t)getpid();
    h.ppid = (uint32_t)getppid();
    write_all(&h, sizeof h);
}

static void at_prepare(void) { pthread_mutex_lock(&lock); }
static void at_parent(void) { pthread_mutex_unlock(&lock); }
static void at_child(void) {
    /* the parent's buffered records are the parent's to write */
    nbuf = 0;
    if (fd >= 0) close(fd);
    fd = -1;
    if (state == 2 || state == 3) {
        state = 2;
        open_file(1);
    }
    pthread_mutex_init(&lock, NULL);
}

#define RESOLVE(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

static void init(void) {
    if (state != 0) return;
    state = 1;
    guard++;
    RESOLVE(calloc);
    RESOLVE(malloc);
    RESOLVE(realloc);
    RESOLVE(reallocarray);
    RESOLVE(free);
    RESOLVE(posix_memalign);
    RESOLVE(aligned_alloc);
    RESOLVE(memalign);
    RESOLVE(valloc);
    RESOLVE(pvalloc);
    const char *p = getenv(ENV_NAME);
    if (!real_malloc || !real_free || !real_calloc || !real_realloc || !p || !*p || strlen(p) >= sizeof path) {
        state = 4;
    } else {
        strcpy(path, p);
        pthread_atfork(at_prepare, at_parent, at_child);
        state = 2;
        open_file(0);
    }
    guard--;
}

__attribute__((constructor)) static void rec_start(void) { init(); }

__attribute__((destructor)) static void rec_stop(void) {
    pthread_mutex_lock(&lock);
    flush_locked();
    if (state == 2) state = 3;
    pthread_mutex_unlock(&lock);
}

static void put_locked(int op, size_t size, uintptr_t arg, uintptr_t result) {
    if (state != 2 && state != 3) return;
    if (my_tid < 0) my_tid = next_tid++;   /* under the mutex */
    struct rec *r = &buf[nbuf++];
    r->op = (uint16_t)op;
    r->pad = 0;
    r->tid = (uint32_t)my_tid;
    r->size = size;
    r->arg = arg;
    r->result = result;
    if (nbuf == BUF_RECS || state == 3) flush_locked();
}

static void put(int op, size_t size, uintptr_t arg, uintptr_t result) {
    pthread_mutex_lock(&lock);
    put_locked(op, size, arg, result);
    pthread_mutex_unlock(&lock);
}

/* record this call? (not re-entrant, recording on) */
#define LOGGING() (guard == 0 && (state == 2 || state == 3))

void *malloc(size_t n) {
    if (!real_malloc) {
        if (state == 1) return boot_alloc(n);
        init();
        if (!real_malloc) return NULL;
    }
    if (!LOGGING()) return real_malloc(n);
    guard++;
    void *p = real_malloc(n);
    put(OP_MALLOC, n, 0, (uintptr_t)p);
    guard--;
    return p;
}

void *calloc(size_t nmemb, size_t n) {
    if (!real_calloc) {
        if (state == 1) {
            size_t t;
            return __builtin_mul_overflow(nmemb, n, &t) ? NULL : boot_alloc(t);
        }
        init();
        if (!real_calloc) return NULL;
    }
    if (!LOGGING()) return real_calloc(nmemb, n);
    guard++;
    void *p = real_calloc(nmemb, n);
    size_t total;
    if (__builtin_mul_overflow(nmemb, n, &total)) total = 0;
    put(OP_CALLOC, total, nmemb, (uintptr_t)p);
    guard--;
    return p;
}

void free(void *p) {
    if (in_boot(p)) return;
    if (!real_free) {
        init();
        if (!real_free) return;   /* nothing the real allocator handed out can exist yet */
    }
    if (!LOGGING()) {
        real_free(p);
        return;
    }
    guard++;
    put(OP_FREE, 0, (uintptr_t)p, 0);   /* before the real free: see "Order" */
    real_free(p);
    guard--;
}

static void *realloc_common(void *old, size_t n, size_t nmemb, size_t elem, int is_array) {
    guard++;
    pthread_mutex_lock(&lock);   /* across the call: see "Order" */
    void *p = is_array ? real_reallocarray(old, nmemb, elem) : real_realloc(old, n);
    put_locked(OP_REALLOC, n, (uintptr_t)old, (uintptr_t)p);
    pthread_mutex_unlock(&lock);
    guard--;
    return p;
}

void *realloc(void *old, size_t n) {
    if (in_boot(old)) {
        /* a bootstrap block moved to the real heap: copy what fits, log it as a malloc */
        void *p = malloc(n);
        if (p) memcpy(p, old, n < (size_t)(boot + sizeof boot - (char *)old) ? n : (size_t)(boot + sizeof boot - (char *)old));
        return p;
    }
    if (!real_realloc) {
        init();
        if (!real_realloc) return NULL;
    }
    if (!LOGGING()) return real_realloc(old, n);
    return realloc_common(old, n, 0, 0, 0);
}

void *reallocarray(void *old, size_t nmemb, size_t elem) {
    size_t total;
    if (__builtin_mul_overflow(nmemb, elem, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!real_reallocarray || in_boot(old)) return realloc(old, total);
    if (!LOGGING()) return real_reallocarray(old, nmemb, elem);
    return realloc_common(old, total, nmemb, elem, 1);
}

int posix_memalign(void **out, size_t align, size_t n) {
    if (!real_posix_memalign) {
        init();
        if (!real_posix_memalign) return ENOMEM;
    }
    if (!LOGGING()) return real_posix_memalign(out, align, n);
    guard++;
    int rc = real_posix_memalign(out, align, n);
    put(OP_POSIX_MEMALIGN, n, align, rc == 0 ? (uintptr_t)*out : 0);
    guard--;
    return rc;
}

#define ALIGNED(fn, OP, ALIGN_EXPR, CALL)                                          \
    {                                                                              \
        if (!real_##fn) {                                                          \
            init();                                                                \
            if (!real_##fn) return NULL;                                           \
        }                                                                          \
        if (!LOGGING()) return CALL;                                               \
        guard++;                                                                   \
        void *p = CALL;                                                            \
        put(OP, n, (ALIGN_EXPR), (uintptr_t)p);                                    \
        guard--;                                                                   \
        return p;                                                                  \
    }

void *aligned_alloc(size_t align, size_t n) ALIGNED(aligned_alloc, OP_ALIGNED_ALLOC, align, real_aligned_alloc(align, n))
void *memalign(size_t align, size_t n) ALIGNED(memalign, OP_MEMALIGN, align, real_memalign(align, n))
void *valloc(size_t n) ALIGNED(valloc, OP_MEMALIGN, (uintptr_t)sysconf(_SC_PAGESIZE), real_valloc(n))
void *pvalloc(size_t n) ALIGNED(pvalloc, OP_MEMALIGN, (uintptr_t)sysconf(_SC_PAGESIZE), real_pvalloc(n))
