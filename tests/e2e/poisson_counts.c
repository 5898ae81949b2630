/* poisson_counts.c ROWS SEED RATE... -- test data for run_e2e.sh: ROWS
 * lines of counts, column j drawn from Poisson(RATE_j) by Knuth's product
 * of uniforms (from splitmix64), independently of chain's own sampler, so
 * that training on them checks the log-mass and sampling from the trained
 * model checks chain_rng_poisson. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state;

static double next_uniform(void)
{
	uint64_t z = (state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return ((double)(z >> 11) + 0.5) * 0x1p-53;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s ROWS SEED RATE...\n", argv[0]);
		return 2;
	}
	long rows = atol(argv[1]);
	state = strtoull(argv[2], NULL, 10);
	for (long r = 0; r < rows; r++)
		for (int j = 3; j < argc; j++) {
			double limit = exp(-atof(argv[j])), prod = next_uniform(); /* rates up to 700 */
			long k = 0;
			while (prod > limit) {
				prod *= next_uniform();
				k++;
			}
			printf("%ld%c", k, j + 1 < argc ? ' ' : '\n');
		}
	return 0;
}
