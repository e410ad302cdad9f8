/*
 * fuzz.h - shared by the libFuzzer targets in t/fuzz/ (one per parser
 * that reads hostile bytes) and by replay.c, which runs a target over
 * its corpus without libFuzzer so that any compiler's build checks the
 * corpus in `make check`.
 *
 * A target defines LLVMFuzzerTestOneInput(); it calls fuzz_fail() when
 * a property it checks does not hold, which aborts: libFuzzer (or the
 * replay) reports the input.
 */
#ifndef IDS_FUZZ_H
#define IDS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a broken property on stderr and aborts. */
void fuzz_fail(const char *what) __attribute__((noreturn));

/* A configuration for targets that need one (parsed once, never freed). */
struct ids_config;
const struct ids_config *fuzz_config(void);

#endif
