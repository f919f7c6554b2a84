/* SHA-256 against the FIPS 180-2 / NIST CAVS vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"

static void check(const char *msg, size_t len, const char *want)
{
	char hex[PC_SHA256_HEX];

	pc_sha256_hex(msg, len, hex);
	assert_string_equal(hex, want);
}

static void test_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrst"
	      "nopqrstu",
	      112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a': exercises many blocks and the length encoding. */
static void test_million_a(void **state)
{
	char *buf = malloc(1000000);

	(void)state;
	memset(buf, 'a', 1000000);
	check(buf, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(buf);
}

/* Feeding in odd-sized pieces gives the same digest as one shot. */
static void test_incremental(void **state)
{
	const char *msg = "The quick brown fox jumps over the lazy dog, again and again and again and again.";
	unsigned char a[PC_SHA256_LEN], b[PC_SHA256_LEN];
	struct pc_sha256 s;
	size_t len = strlen(msg);

	(void)state;
	pc_sha256_init(&s);
	pc_sha256_update(&s, msg, len);
	pc_sha256_final(&s, a);
	pc_sha256_init(&s);
	for (size_t i = 0; i < len; i += 7)
		pc_sha256_update(&s, msg + i, len - i < 7 ? len - i : 7);
	pc_sha256_final(&s, b);
	assert_memory_equal(a, b, PC_SHA256_LEN);
	/* 55, 56 and 64 bytes: the padding boundary cases */
	check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 55,
	      "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
	check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 56,
	      "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
	check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 64,
	      "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_incremental),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
