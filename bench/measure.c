/* measure: runs a command and reports its wall time, CPU time and peak RSS.
 *
 *   measure OUT_FILE COMMAND [ARG...]
 *
 * Forks, execs COMMAND (stdin, stdout and stderr inherited), waits for it
 * with wait4 and writes one JSON line to OUT_FILE:
 *   {"status":S,"wall_s":W,"user_s":U,"sys_s":Y,"maxrss_kib":M}
 * status is the exit status (128 + signal number when killed by a signal).
 * Exits with COMMAND's status (127 if it cannot be run).
 *
 * Why not measure from the Python driver: Linux charges a child the peak
 * RSS of the memory image it had before exec, which for a child of a
 * Python process is that process's whole RSS (some 20 MiB). This launcher
 * is about 1 MiB, below any program it measures. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: measure OUT_FILE COMMAND [ARG...]\n");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "measure: cannot run %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    fprintf(out, "{\"status\":%d,\"wall_s\":%.9f,\"user_s\":%.6f,\"sys_s\":%.6f,\"maxrss_kib\":%ld}\n", status,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
    fclose(out);
    return status;
}
