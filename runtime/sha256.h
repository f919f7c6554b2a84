/* SHA-256 (FIPS 180-4), small and dependency-free: the result's
 * code_sha256 and the audit log identify the exact code that ran. */
#ifndef PYCELL_SHA256_H
#define PYCELL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define PC_SHA256_LEN 32
#define PC_SHA256_HEX (PC_SHA256_LEN * 2 + 1)

struct pc_sha256 {
	uint32_t h[8];
	uint64_t bytes;
	unsigned char block[64];
	size_t used;
};

void pc_sha256_init(struct pc_sha256 *s);
void pc_sha256_update(struct pc_sha256 *s, const void *data, size_t len);
void pc_sha256_final(struct pc_sha256 *s, unsigned char out[PC_SHA256_LEN]);
/* One shot, lower-case hex into out (65 bytes with the NUL). */
void pc_sha256_hex(const void *data, size_t len, char out[PC_SHA256_HEX]);

#endif
