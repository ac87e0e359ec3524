/* How long 500 random loads from a working set take after a gap in which the thread spins
 * (never sleeps, no system call: clock_gettime is a vDSO read) or sleeps: whether the machine
 * keeps a thread's cache warm between two of its decisions. BENCHMARKS.md, issue 10,
 * thirteenth sitting.
 *
 *   cc -O2 -o /tmp/cache-gap scripts/cache-gap.c && /tmp/cache-gap 256 && /tmp/cache-gap 1024
 *
 * The argument is the working set in KB (256 unless given). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { LOADS = 500, REPS = 200, LINE = 64 };

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void spin_us(long us) {
    uint64_t until = now_ns() + (uint64_t)us * 1000;
    while (now_ns() < until) {
    }
}

int main(int argc, char **argv) {
    size_t bytes = (size_t)(argc > 1 ? atol(argv[1]) : 256) * 1024;
    char *set = aligned_alloc(LINE, bytes);
    uint32_t *at = malloc(LOADS * sizeof *at);
    if (set == NULL || at == NULL || bytes < LINE) {
        fprintf(stderr, "cannot allocate the working set\n");
        return 1;
    }
    for (size_t i = 0; i < bytes; i++) set[i] = (char)i;
    srand(1);
    for (int i = 0; i < LOADS; i++) at[i] = (uint32_t)((size_t)rand() % (bytes / LINE)) * LINE;

    const long gaps_us[] = {0, 100, 500, 2000, 10000};
    for (size_t g = 0; g < sizeof gaps_us / sizeof gaps_us[0]; g++) {
        for (int sleeping = 0; sleeping < 2; sleeping++) {
            uint64_t total = 0;
            volatile long sum = 0;
            for (int r = 0; r < REPS; r++) {
                if (gaps_us[g] > 0) {
                    if (sleeping) usleep((useconds_t)gaps_us[g]);
                    else spin_us(gaps_us[g]);
                }
                uint64_t t0 = now_ns();
                for (int i = 0; i < LOADS; i++) sum += set[at[i]];
                total += now_ns() - t0;
            }
            printf("set=%zuK gap=%ldus %s: %.2f us\n", bytes / 1024, gaps_us[g],
                   sleeping ? "sleep" : "spin ", (double)total / 1000.0 / REPS);
            if (gaps_us[g] == 0) break;
        }
    }
    return 0;
}
