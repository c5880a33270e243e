/* fuzz.h: small helpers shared by the libFuzzer targets of fuzz/.
 *
 * Inputs that carry several fields separate them with the byte FUZZ_SEP
 * (0x00): fuzz_fields() cuts the input into at most `max` fields (the last
 * one takes the rest, separators included). Every field is then copied into
 * its own heap block of exactly its length (fuzz_copy), or its length plus a
 * NUL (fuzz_cstr), so AddressSanitizer sees a read one byte past a field. */
#ifndef DDB_FUZZ_H
#define DDB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SEP 0x00

typedef struct {
    const uint8_t *p;
    size_t n;
} fuzz_field;

/* Fills f[0..max) (absent fields empty); returns how many were present. */
static inline size_t fuzz_fields(const uint8_t *data, size_t size, fuzz_field *f, size_t max) {
    size_t k = 0, i = 0;
    for (size_t j = 0; j < max; j++) f[j] = (fuzz_field){(const uint8_t *)"", 0};
    while (k < max && i <= size) {
        size_t j = i;
        if (k + 1 < max)
            while (j < size && data[j] != FUZZ_SEP) j++;
        else
            j = size;
        f[k++] = (fuzz_field){data + i, j - i};
        i = j + 1;
    }
    return k;
}

/* A heap copy of exactly n bytes (malloc(0) is avoided: 1 byte, unread). */
static inline char *fuzz_copy(const void *p, size_t n) {
    char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}

/* A heap copy of n bytes plus a NUL. */
static inline char *fuzz_cstr(const void *p, size_t n) {
    char *c = malloc(n + 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

/* A broken invariant: report and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz invariant broken at %s:%d: %s\n  ", __FILE__, \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
