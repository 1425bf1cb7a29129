/*
 * uml_xstate_shim.c - LD_PRELOAD library that lets Debian's linux.uml 6.1
 * run on hosts whose XSAVE area is bigger than x87+SSE+AVX (AVX-512, PKRU,
 * AMX, ...).  Built and used by tests/e2e/uml_peer.sh; see UML_FPU there.
 *
 * The problem.  linux.uml keeps each guest thread's FPU state in a fixed
 * 832-byte buffer (legacy area + XSAVE header + AVX) and moves it with
 * ptrace(PTRACE_GETREGSET / PTRACE_SETREGSET, pid, NT_X86_XSTATE).  The
 * host kernel only accepts a SETREGSET of exactly its own XSAVE size, so on
 * such hosts the first guest process dies ("userspace - ptrace set fp regs
 * failed, errno = 14", then "Attempted to kill init!").  Making the probe
 * fail (FXSAVE fallback) is not enough: linux.uml resumes a guest process
 * after every page fault by writing back only the state it saved, while the
 * host has reset the rest when it ran UML's fault handler in that process;
 * everything outside the saved part (AVX-512 registers, or AVX in FXSAVE
 * mode) is then zeroed under the guest's feet, and glibc's string functions
 * return garbage.
 *
 * The fix.  This library wraps ptrace() for those two requests only:
 *   GETREGSET  reads the host's full XSAVE image, gives linux.uml the first
 *              bytes it asked for, and keeps the full image, keyed by the
 *              address of linux.uml's buffer (one buffer per guest thread,
 *              plus the one it uses around page faults);
 *   SETREGSET  rebuilds a full image: the one kept for that buffer (or the
 *              process's current state if there is none), with linux.uml's
 *              bytes on top (its header bits for the features it holds, the
 *              kept bits for the rest), and writes that.
 * So every guest thread gets its complete register state back.  What is
 * still not preserved is AVX-512/AMX state across a guest signal handler
 * (linux.uml's signal frames hold its 832 bytes only).
 * All other ptrace requests go straight to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define NT_X86_XSTATE_ 0x202
#define XSTATE_BV_OFFSET 512        /* XSAVE header follows the legacy area */
#define AVX_END 832                 /* legacy 512 + header 64 + AVX 256 */
#define MAX_XSAVE (64 * 1024)
#define NSLOTS 1024                 /* power of two */
#define PROBES 16

struct slot {
	const void *key;
	unsigned char *image;
};

static struct slot slots[NSLOTS];
static unsigned rr;                 /* eviction cursor when a probe run is full */
static size_t full_size;            /* host XSAVE image size, learnt once */
static unsigned char *scratch;

static long raw_ptrace(long req, pid_t pid, void *addr, void *data)
{
	return syscall(SYS_ptrace, req, pid, addr, data);
}

static unsigned hash(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	v ^= v >> 17;
	v *= 0x9E3779B97F4A7C15ull;
	return (unsigned)(v >> 40) & (NSLOTS - 1);
}

static struct slot *find(const void *key, int create)
{
	unsigned h = hash(key), i;
	for (i = 0; i < PROBES; i++) {
		struct slot *s = &slots[(h + i) & (NSLOTS - 1)];
		if (s->key == key)
			return s;
		if (s->key == NULL) {
			if (!create)
				return NULL;
			s->image = malloc(full_size);
			if (s->image == NULL)
				return NULL;
			s->key = key;
			return s;
		}
	}
	if (!create)
		return NULL;
	/* probe run full: reuse one of its slots (that thread falls back to
	 * the process's current state on its next SETREGSET) */
	struct slot *s = &slots[(h + (rr++ % PROBES)) & (NSLOTS - 1)];
	s->key = key;
	return s;
}

static int learn_size(pid_t pid)
{
	if (full_size)
		return 0;
	unsigned char *probe = malloc(MAX_XSAVE);
	if (probe == NULL)
		return -1;
	struct iovec iov = { probe, MAX_XSAVE };
	long r = raw_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE_, &iov);
	if (r == 0 && iov.iov_len >= AVX_END) {
		full_size = iov.iov_len;
		scratch = probe;
		return 0;
	}
	int e = errno;
	free(probe);
	errno = r == 0 ? EIO : e;
	return -1;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, sizeof v);
}

static long xstate_get(pid_t pid, struct iovec *u)
{
	struct iovec iov = { scratch, full_size };
	if (raw_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE_, &iov) != 0)
		return -1;
	size_t n = u->iov_len < iov.iov_len ? u->iov_len : iov.iov_len;
	memcpy(u->iov_base, scratch, n);
	u->iov_len = n;
	if (n < iov.iov_len) {
		struct slot *s = find(u->iov_base, 1);
		if (s != NULL && s->image != NULL)
			memcpy(s->image, scratch, full_size);
	}
	return 0;
}

static long xstate_set(pid_t pid, struct iovec *u)
{
	size_t n = u->iov_len;
	if (n >= full_size || n < XSTATE_BV_OFFSET + 8)
		return raw_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE_, u);
	struct slot *s = find(u->iov_base, 0);
	if (s != NULL && s->image != NULL) {
		memcpy(scratch, s->image, full_size);
	} else {
		struct iovec cur = { scratch, full_size };
		if (raw_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE_, &cur) != 0)
			return -1;
	}
	/* features wholly inside linux.uml's bytes: x87, SSE (and AVX) */
	uint64_t own = n >= AVX_END ? 0x7 : 0x3;
	uint64_t kept = get_u64(scratch + XSTATE_BV_OFFSET);
	uint64_t uml = get_u64((const unsigned char *)u->iov_base + XSTATE_BV_OFFSET);
	memcpy(scratch, u->iov_base, n);
	put_u64(scratch + XSTATE_BV_OFFSET, (uml & own) | (kept & ~own));
	struct iovec iov = { scratch, full_size };
	return raw_ptrace(PTRACE_SETREGSET, pid, (void *)NT_X86_XSTATE_, &iov);
}

long ptrace(enum __ptrace_request req, ...)
{
	static long (*real_ptrace)(enum __ptrace_request, pid_t, void *, void *);
	va_list ap;
	va_start(ap, req);
	pid_t pid = va_arg(ap, pid_t);
	void *addr = va_arg(ap, void *);
	void *data = va_arg(ap, void *);
	va_end(ap);

	if ((req == PTRACE_GETREGSET || req == PTRACE_SETREGSET) &&
	    (uintptr_t)addr == NT_X86_XSTATE_ && data != NULL) {
		if (learn_size(pid) != 0)
			return -1;
		if (req == PTRACE_GETREGSET)
			return xstate_get(pid, data);
		return xstate_set(pid, data);
	}
	if (real_ptrace == NULL)
		real_ptrace = (long (*)(enum __ptrace_request, pid_t, void *, void *))
			dlsym(RTLD_NEXT, "ptrace");
	return real_ptrace(req, pid, addr, data);
}
