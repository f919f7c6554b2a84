#define _GNU_SOURCE
#include "caps.h"

#include <errno.h>
#include <linux/securebits.h>
#include <sys/prctl.h>

int pc_caps_prepare(struct pc_caps *c, struct pc_error *err)
{
	c->empty = cap_init(); /* all three sets clear */
	if (!c->empty)
		return pc_error_set(err, errno, "cap_init");
	return 0;
}

void pc_caps_free(struct pc_caps *c)
{
	if (c->empty)
		cap_free(c->empty);
	c->empty = NULL;
}

int pc_caps_setup_child(const struct pc_caps *c, struct pc_error *err)
{
	/* Lock every securebit so that uid 0 in the namespace regains nothing
	 * on exec or setuid (capabilities(7), "The securebits flags"). */
	const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
				   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
				   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	cap_value_t v;

	/* The bounding set needs CAP_SETPCAP, so it goes before the rest. */
	for (v = 0; v < (cap_value_t)cap_max_bits(); v++) {
		if (cap_drop_bound(v) < 0 && errno != EINVAL)
			return pc_error_set(err, errno, "drop capability %d from the bounding set", (int)v);
	}
	if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
		return pc_error_set(err, errno, "lock securebits");
	/* One call: libcap's cap_reset_ambient() first asks each of the ~41
	 * capabilities whether it is set, on every sandbox's start. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return pc_error_set(err, errno, "clear ambient capabilities");
	if (cap_set_proc(c->empty) < 0)
		return pc_error_set(err, errno, "clear capability sets");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return pc_error_set(err, errno, "set no_new_privs");
	return 0;
}
