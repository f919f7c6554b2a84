/* One RTM_NEWLINK request with NLM_F_ACK, the errno taken from the kernel's
 * nlmsgerr (bubblewrap's loopback_setup reports a stale errno instead). */
#define _GNU_SOURCE
#include "netns.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <time.h>

static int ack_cb(const struct nlmsghdr *nlh, void *data)
{
	(void)nlh;
	(void)data;
	return MNL_CB_OK;
}

int pc_net_setup_child(struct pc_error *err)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	unsigned int seq = (unsigned int)time(NULL), portid;
	int idx = (int)if_nametoindex("lo"), ret;
	ssize_t n;

	if (idx == 0)
		return pc_error_set(err, errno, "find loopback interface");
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		return pc_error_set(err, errno, "open rtnetlink socket");
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = pc_error_set(err, errno, "bind rtnetlink socket");
		goto out;
	}
	portid = mnl_socket_get_portid(nl);

	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	ifm->ifi_index = idx;
	ifm->ifi_flags = IFF_UP;
	ifm->ifi_change = IFF_UP;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = pc_error_set(err, errno, "send RTM_NEWLINK for lo");
		goto out;
	}
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0) {
		ret = pc_error_set(err, errno, "read rtnetlink ack");
		goto out;
	}
	/* mnl_cb_run turns an NLMSG_ERROR ack into -1 with errno from nlmsgerr. */
	ret = mnl_cb_run(buf, (size_t)n, seq, portid, ack_cb, NULL);
	if (ret < 0) {
		ret = pc_error_set(err, errno, "bring lo up");
		goto out;
	}
	ret = 0;
out:
	mnl_socket_close(nl);
	return ret;
}
