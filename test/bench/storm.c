/*
 * storm: a loopback TCP connection storm for the pipeline benchmark, counting what it made.
 *
 *   storm PORT [-w WORKERS] [-s SECONDS] [-n CONNS] [-r RATE]
 *
 * WORKERS processes (default 1, at most 8) each own one listener on 127.0.0.1:PORT+i and loop:
 * connect a client (blocking: the backlog completes the handshake), accept, the client closes
 * first, the server reads its FIN and closes. Nothing is sent. Every client connection makes
 * exactly 5 tcpstates transitions with remote port PORT+i:
 *   CLOSE->SYN_SENT, SYN_SENT->ESTABLISHED, ESTABLISHED->FIN_WAIT1, FIN_WAIT1->FIN_WAIT2,
 *   FIN_WAIT2->CLOSE
 * (the server side has the listener port as its local port, so `--rport` filters leave it out).
 * The storm stops after SECONDS (default 10) or once CONNS connections were made in all
 * (whichever comes first); RATE caps connections per second over all workers (0: as fast as
 * possible). At the end one JSON line goes to stdout:
 *
 *   {"conns":N,"seconds":S,"cpu_s":C,"workers":W,"ports":[P,...]}
 *
 * cpu_s is the user+system CPU of the storm and its workers: the BPF programs attached to the
 * tracepoint run in its context, so a tracer's kernel-side cost shows up here.
 *
 * Any failed system call ends the storm with status 1 and a message on stderr: a failed connect
 * would make transitions the count does not know about.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 8

static void die(const char *what)
{
	fprintf(stderr, "storm: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long parse(const char *s, const char *what, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v > max) {
		fprintf(stderr, "storm: bad %s \"%s\" (0..%lu)\n", what, s, max);
		exit(2);
	}
	return v;
}

/* One worker: returns how many connections it completed. */
static unsigned long worker(unsigned port, double until, unsigned long max_conns, double rate)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1, lfd;
	unsigned long n = 0;
	double t0 = now_s();
	char b[64];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket(listener)");
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		die("setsockopt(SO_REUSEADDR)");
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0)
		die("bind");
	if (listen(lfd, 64) < 0)
		die("listen");

	while (n < max_conns) {
		int cfd, sfd;
		ssize_t r;

		/* the clock is read every 64 connections: cheap, and at most ~10 ms late */
		if ((n & 63) == 0 && now_s() >= until)
			break;
		if (rate > 0) {
			double due = t0 + (double)n / rate, t = now_s();

			if (t >= until)
				break;
			if (due > t) {
				struct timespec d = { .tv_sec = (time_t)(due - t),
						      .tv_nsec = (long)((due - t - (double)(time_t)(due - t)) * 1e9) };
				nanosleep(&d, NULL);
			}
		}
		cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cfd < 0)
			die("socket(client)");
		if (connect(cfd, (struct sockaddr *)&a, sizeof a) < 0)
			die("connect");
		sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (sfd < 0)
			die("accept");
		if (close(cfd) < 0)
			die("close(client)");
		do
			r = recv(sfd, b, sizeof b, 0);
		while (r < 0 && errno == EINTR);
		if (r != 0) {
			if (r > 0)
				errno = EPROTO;
			die("recv(server): expected the client's FIN");
		}
		if (close(sfd) < 0)
			die("close(server)");
		n++;
	}
	close(lfd);
	return n;
}

int main(int argc, char **argv)
{
	unsigned long port, workers = 1, seconds = 10, conns = ~0UL, rate = 0, total = 0;
	unsigned long *counts;
	double t0, until;
	int opt, failed = 0;

	prctl(PR_SET_NAME, "storm", 0, 0, 0);
	while ((opt = getopt(argc, argv, "w:s:n:r:")) != -1) {
		switch (opt) {
		case 'w': workers = parse(optarg, "WORKERS", MAX_WORKERS); break;
		case 's': seconds = parse(optarg, "SECONDS", 86400); break;
		case 'n': conns = parse(optarg, "CONNS", ~0UL); break;
		case 'r': rate = parse(optarg, "RATE", 10000000); break;
		default:
			fprintf(stderr, "usage: storm PORT [-w WORKERS] [-s SECONDS] [-n CONNS] [-r RATE]\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: storm PORT [-w WORKERS] [-s SECONDS] [-n CONNS] [-r RATE]\n");
		return 2;
	}
	port = parse(argv[optind], "PORT", 65535 - MAX_WORKERS);
	if (workers == 0 || port == 0) {
		fprintf(stderr, "storm: WORKERS and PORT must be at least 1\n");
		return 2;
	}
	counts = mmap(NULL, sizeof(*counts) * MAX_WORKERS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED)
		die("mmap");

	t0 = now_s();
	until = t0 + (double)seconds;
	for (unsigned long i = 0; i < workers; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0) {
			/* share CONNS and RATE out evenly; the first workers take the remainder */
			unsigned long mine = conns == ~0UL ? ~0UL : conns / workers + (i < conns % workers);

			prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
			counts[i] = worker((unsigned)(port + i), until, mine, (double)rate / (double)workers);
			_exit(0);
		}
	}
	for (unsigned long i = 0; i < workers; i++) {
		int st;

		if (wait(&st) < 0)
			die("wait");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed = 1;
	}
	if (failed) {
		fprintf(stderr, "storm: a worker failed; its connections are not counted\n");
		return 1;
	}
	for (unsigned long i = 0; i < workers; i++)
		total += counts[i];
	{
		struct rusage self, kids;
		double cpu;

		getrusage(RUSAGE_SELF, &self);
		getrusage(RUSAGE_CHILDREN, &kids);
		cpu = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
		      (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
		printf("{\"conns\":%lu,\"seconds\":%.3f,\"cpu_s\":%.3f,\"workers\":%lu,\"ports\":[", total,
		       now_s() - t0, cpu, workers);
	}
	for (unsigned long i = 0; i < workers; i++)
		printf("%s%lu", i ? "," : "", port + i);
	printf("]}\n");
	return 0;
}
