/* System calls for a warm job's leader, which shares the zygote's memory
 * (CLONE_VM, zygote.c).
 *
 * Sharing the memory means sharing the zygote's thread-local storage,
 * errno included: once the zygote runs again beside a leader, a libc
 * wrapper's errno write in the leader would land in the zygote's.
 * pc_rawsys() returns -errno instead and writes nothing. pc_clone3_run()
 * is clone3() for a child on a stack of its own, which libc does not offer
 * (its clone() cannot take CLONE_INTO_CGROUP): the child calls fn(arg) on
 * that stack, then exits with its value. */
#ifndef PYCELL_INIT_RAWSYS_H
#define PYCELL_INIT_RAWSYS_H

#include <linux/sched.h>
#include <stddef.h>
#include <sys/syscall.h>

#if !defined(__x86_64__)
#error "rawsys.h: add this architecture's system call convention"
#endif

static inline long pc_rawsys(long nr, long a, long b, long c, long d, long e)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

#define RAWSYS(nr, a, b, c) pc_rawsys((nr), (long)(a), (long)(b), (long)(c), 0, 0)

/* The child starts on a->stack with nothing below it: it never leaves the
 * asm, calling fn(arg) (rsp is 16-byte aligned before the call, as the ABI
 * wants) and then exit(2) with what fn returned. */
static inline long pc_clone3_run(struct clone_args *a, int (*fn)(void *), void *arg)
{
	register long r8 __asm__("r8") = (long)arg;
	register long r9 __asm__("r9") = (long)fn;
	long ret;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r8, %%rdi\n\t"
			 "call *%%r9\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov %[exit], %%eax\n\t"
			 "syscall\n\t"
			 "hlt\n"
			 "1:"
			 : "=a"(ret)
			 : "a"((long)SYS_clone3), "D"(a), "S"(sizeof(*a)), "r"(r8), "r"(r9), [exit] "i"(SYS_exit)
			 : "rcx", "r11", "memory");
	return ret;
}

#endif
