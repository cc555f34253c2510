/*
 * Bech32 (BIP 173) as age uses it for recipients and identities: no 90-character limit,
 * all lowercase or all uppercase, the checksum always over the lowercase string.
 * OpenSSL has no Bech32, so this small codec is ours.
 */
#include "age_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define CHECKSUM_LEN 6

static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod_step(uint32_t chk, unsigned int value)
{
	static const uint32_t gen[5] = {
		0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3,
	};
	uint32_t top = chk >> 25;

	chk = ((chk & 0x1ffffff) << 5) ^ value;
	for (int i = 0; i < 5; i++)
		if ((top >> i) & 1)
			chk ^= gen[i];
	return chk;
}

static uint32_t polymod_hrp(const char *hrp, size_t hrp_len)
{
	uint32_t chk = 1;

	for (size_t i = 0; i < hrp_len; i++)
		chk = polymod_step(chk, (unsigned char)hrp[i] >> 5);
	chk = polymod_step(chk, 0);
	for (size_t i = 0; i < hrp_len; i++)
		chk = polymod_step(chk, (unsigned char)hrp[i] & 31);
	return chk;
}

static int charset_value(char c)
{
	const char *p = c ? strchr(charset, c) : NULL;

	return p ? (int)(p - charset) : -1;
}

int bop__bech32_encode(char **out, const char *hrp, const unsigned char *data, size_t len,
	bool upper)
{
	size_t hrp_len = strlen(hrp);
	size_t ngroups = (len * 8 + 4) / 5;
	size_t total = hrp_len + 1 + ngroups + CHECKSUM_LEN;
	uint32_t chk = polymod_hrp(hrp, hrp_len);
	uint32_t acc = 0;
	unsigned int bits = 0;
	char *s, *p;

	*out = NULL;
	s = malloc(total + 1);
	if (!s)
		return bop__error_oom();
	memcpy(s, hrp, hrp_len);
	s[hrp_len] = '1';
	p = s + hrp_len + 1;
	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			*p = charset[(acc >> bits) & 31];
			chk = polymod_step(chk, (acc >> bits) & 31);
			p++;
		}
	}
	if (bits) {
		*p = charset[(acc << (5 - bits)) & 31];
		chk = polymod_step(chk, (acc << (5 - bits)) & 31);
		p++;
	}
	for (int i = 0; i < CHECKSUM_LEN; i++)
		chk = polymod_step(chk, 0);
	chk ^= 1;
	for (int i = 0; i < CHECKSUM_LEN; i++)
		*p++ = charset[(chk >> (5 * (CHECKSUM_LEN - 1 - i))) & 31];
	*p = '\0';
	if (upper)
		for (p = s; *p; p++)
			*p = (char)toupper((unsigned char)*p);
	*out = s;
	return 0;
}

/* Checks the characters and the case; returns the position of the separator. */
static int check_chars(const char *s, size_t n, size_t *sep)
{
	bool lower = false, upper = false;

	*sep = n;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 33 || c > 126)
			return bop__error(BOP_EFORMAT, "invalid character at position %zu", i + 1);
		lower |= islower(c) != 0;
		upper |= isupper(c) != 0;
		if (c == '1')
			*sep = i;
	}
	if (lower && upper)
		return bop__error(BOP_EFORMAT, "mixes uppercase and lowercase letters");
	if (*sep == n || *sep == 0)
		return bop__error(BOP_EFORMAT, "is not Bech32 (no '1' separator after the prefix)");
	if (n - *sep - 1 < CHECKSUM_LEN)
		return bop__error(BOP_EFORMAT, "is too short");
	return 0;
}

int bop__bech32_decode(const char *s, char *hrp, size_t hrp_size, unsigned char *data,
	size_t data_size, size_t *len)
{
	size_t n = strlen(s), sep, ngroups, used = 0;
	uint32_t chk, acc = 0;
	unsigned int bits = 0;
	int ret;

	*len = 0;
	ret = check_chars(s, n, &sep);
	if (ret < 0)
		return ret;
	if (sep + 1 > hrp_size)
		return bop__error(BOP_EFORMAT, "has an unexpected prefix");
	for (size_t i = 0; i < sep; i++)
		hrp[i] = (char)tolower((unsigned char)s[i]);
	hrp[sep] = '\0';
	chk = polymod_hrp(hrp, sep);
	ngroups = n - sep - 1 - CHECKSUM_LEN;
	for (size_t i = sep + 1; i < n; i++) {
		int v = charset_value((char)tolower((unsigned char)s[i]));

		if (v < 0)
			return bop__error(BOP_EFORMAT, "has a character outside the Bech32 alphabet");
		chk = polymod_step(chk, (unsigned int)v);
		if (i >= sep + 1 + ngroups)
			continue;
		acc = (acc << 5) | (unsigned int)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (used == data_size)
				return bop__error(BOP_EFORMAT, "is too long");
			data[used++] = (unsigned char)(acc >> bits);
		}
	}
	if (chk != 1)
		return bop__error(BOP_EFORMAT, "has a bad checksum (mistyped or truncated?)");
	if (bits >= 5 || (acc & ((1u << bits) - 1)) != 0)
		return bop__error(BOP_EFORMAT, "has invalid padding");
	*len = used;
	return 0;
}
