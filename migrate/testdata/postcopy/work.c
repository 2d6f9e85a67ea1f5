/* Post-copy test workload: touches MIB MiB with a known pattern, then every
 * 10 ms appends "<wall ms> <counter> <status>" to LOG and re-verifies one page
 * of the pattern per tick (and all pages every VERIFY_EVERY ticks).
 * usage: work MIB LOG */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <signal.h>

static volatile sig_atomic_t stop;
static void on_term(int s) { (void)s; stop = 1; }
static long long now_ms(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return t.tv_sec * 1000LL + t.tv_nsec / 1000000; }

int main(int argc, char **argv) {
	size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 256;
	const char *log = argc > 2 ? argv[2] : "/tmp/work.log";
	size_t len = mib << 20, pages = len / 4096;
	signal(SIGTERM, on_term);
	unsigned char *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 1;
	for (size_t p = 0; p < pages; p++)
		for (size_t o = 0; o < 4096; o += 512) *(uint64_t *)(m + p * 4096 + o) = p * 0x9E3779B97F4A7C15ULL + o;
	FILE *f = fopen(log, "a");
	if (!f) return 2;
	setvbuf(f, 0, _IOLBF, 0);
	fprintf(f, "%lld start pid=%d mib=%zu\n", now_ms(), getpid(), mib);
	unsigned long long c = 0;
	size_t next = 0;
	while (!stop) {
		int bad = 0;
		/* every 100 ticks: sweep all pages (forces every lazy page in) */
		size_t from = next, to = (c % 100 == 99) ? pages : next + 1;
		if (to == pages) from = 0;
		long long t0 = now_ms();
		for (size_t p = from; p < to && p < pages; p++)
			for (size_t o = 0; o < 4096; o += 512)
				if (*(uint64_t *)(m + p * 4096 + o) != p * 0x9E3779B97F4A7C15ULL + o) bad++;
		next = (next + 4099) % pages;
		fprintf(f, "%lld %llu %s%s %lldms\n", now_ms(), c++, bad ? "BAD" : "ok", to == pages ? " sweep" : "", now_ms() - t0);
		usleep(10000);
	}
	fprintf(f, "%lld stop\n", now_ms());
	return 0;
}
