/* CLinuxSys: the few calls that need C (a fork whose child may only make async-signal-safe calls). */
#include "CLinuxSys.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

pid_t clinux_spawn_tied(char *const argv[], const sigset_t *mask) {
	int p[2];
	if (pipe(p) != 0) return -errno;
	fcntl(p[0], F_SETFD, FD_CLOEXEC);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]); close(p[1]);
		return -e;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, mask, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) _exit(137);   /* the parent died before the prctl */
		execvp(argv[0], argv);
		int e = errno;
		(void)!write(p[1], &e, sizeof e);
		_exit(127);
	}
	close(p[1]);
	int e = 0;
	ssize_t n;
	do { n = read(p[0], &e, sizeof e); } while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof e) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
		return -e;
	}
	return pid;
}
