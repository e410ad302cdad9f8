/*
 * rng.h - the deterministic random numbers of mkspool.
 *
 * xoshiro256** seeded through splitmix64 (Blackman and Vigna, "Scrambled
 * linear pseudorandom number generators", 2018).  Every stream is named
 * by the run's seed and a stream number, so that what one owner's
 * folders look like does not depend on how many random numbers another
 * owner used.  Only integer arithmetic: a seed gives the same spool on
 * every machine and compiler.
 */
#ifndef MKSPOOL_RNG_H
#define MKSPOOL_RNG_H

#include <stdint.h>

struct rng {
	uint64_t s[4];
};

static inline uint64_t
rng_splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Seeds r for stream number stream of the run seeded with seed. */
static inline void
rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = rng_splitmix(&x);
}

static inline uint64_t
rng_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rng_rotl(s[3], 45);
	return result;
}

/* A number in [0, n) (n > 0), by Lemire's multiply-shift. */
static inline uint32_t
rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* A number in [lo, hi] (lo <= hi). */
static inline int64_t
rng_range(struct rng *r, int64_t lo, int64_t hi)
{
	uint64_t span = (uint64_t)(hi - lo) + 1;

	if (span == 0 || span > UINT32_MAX)
		return lo + (int64_t)(rng_next(r) % (span ? span : UINT64_MAX));
	return lo + rng_below(r, (uint32_t)span);
}

/* A number in [a, b], or a when the range is empty. */
static inline int64_t
rng_between(struct rng *r, int64_t a, int64_t b)
{
	return b <= a ? a : rng_range(r, a, b);
}

/* True with probability per_mille / 1000. */
static inline int
rng_chance(struct rng *r, unsigned per_mille)
{
	return rng_below(r, 1000) < per_mille;
}

/* One element of an array of n (n > 0). */
#define RNG_PICK(r, arr) ((arr)[rng_below((r), sizeof(arr) / sizeof((arr)[0]))])

#endif
