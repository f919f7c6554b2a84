/* Network namespace: loopback only ("network": "none"). */
#ifndef PYCELL_NETNS_H
#define PYCELL_NETNS_H

#include "error.h"

/* Child side: brings `lo` up in the new namespace over rtnetlink. */
int pc_net_setup_child(struct pc_error *err);

#endif
