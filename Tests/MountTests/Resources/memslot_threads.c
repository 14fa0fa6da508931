/* Memslots on a guest_memfd under `gmemctl run`, bound from two threads at once while a third
 * makes other trapped calls (KVM_CHECK_EXTENSION) and a 200 us interval timer interrupts them all
 * (SA_RESTART): every bind and delete must succeed and every capability answer must be run's.
 * Kernel uAPI only. Prints "binds=N caps_wrong=0" and exits 0 when all held. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>
#include "guest_memfd_uapi.h"


static int kvm, vm, gmem;
static volatile int stop;
static long caps_wrong, binds;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void tick(int sig) { (void)sig; }

static void *asker(void *unused) {
	(void)unused;
	while (!stop) {
		int v = ioctl(kvm, KVM_CHECK_EXTENSION, 234);
		if (v != 1) { pthread_mutex_lock(&lock); caps_wrong++; pthread_mutex_unlock(&lock); }
	}
	return NULL;
}

static int set(struct kvm_userspace_memory_region2 *r) {
	int rc;
	do rc = ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r); while (rc < 0 && errno == EINTR);
	return rc;
}

static void *binder(void *arg) {
	long slot = (long)arg;
	for (int i = 0; i < 100; i++) {
		struct kvm_userspace_memory_region2 r = { .slot = (uint32_t)slot, .flags = KVM_MEM_GUEST_MEMFD,
			.guest_phys_addr = (uint64_t)slot << 24, .memory_size = 1 << 16,
			.guest_memfd_offset = (uint64_t)slot << 16, .guest_memfd = (uint32_t)gmem };
		if (set(&r) != 0) { printf("bind slot %ld: %s\n", slot, strerror(errno)); return (void *)1; }
		r.memory_size = 0;
		if (set(&r) != 0) { printf("delete slot %ld: %s\n", slot, strerror(errno)); return (void *)1; }
		pthread_mutex_lock(&lock); binds++; pthread_mutex_unlock(&lock);
	}
	return NULL;
}

int main(void) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	struct kvm_create_guest_memfd create = { .size = 1 << 20, .flags = GUEST_MEMFD_FLAG_MMAP };
	gmem = vm < 0 ? -1 : ioctl(vm, KVM_CREATE_GUEST_MEMFD, &create);
	if (gmem < 0) { perror("KVM_CREATE_GUEST_MEMFD"); return 1; }
	struct sigaction sa = { .sa_handler = tick, .sa_flags = SA_RESTART };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval every = { { 0, 200 }, { 0, 200 } };
	setitimer(ITIMER_REAL, &every, NULL);
	pthread_t a, b1, b2;
	void *r1, *r2;
	pthread_create(&a, NULL, asker, NULL);
	pthread_create(&b1, NULL, binder, (void *)1L);
	pthread_create(&b2, NULL, binder, (void *)2L);
	pthread_join(b1, &r1);
	pthread_join(b2, &r2);
	stop = 1;
	pthread_join(a, NULL);
	printf("binds=%ld caps_wrong=%ld\n", binds, caps_wrong);
	return r1 || r2 || caps_wrong ? 1 : 0;
}
