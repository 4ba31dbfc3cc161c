/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ethernet, ARP, IPv4, ICMP echo and UDP for the dataplane, on plain byte buffers so the
 * code is testable without EAL. The runtime calls net_classify() once per received frame;
 * everything it needs later (offsets, addresses, ports) is in struct net_pkt.
 *
 * Addresses in struct net_config and struct net_pkt are kept in network byte order, as
 * they appear on the wire; ports and lengths are in host order.
 */
#ifndef SP_DATAPLANE_NET_H
#define SP_DATAPLANE_NET_H

#include <stdbool.h>
#include <stdint.h>

#define NET_ETH_ADDR_LEN 6
#define NET_ETH_HDR_LEN  14
#define NET_IPV4_HDR_LEN 20 /* without options: what every reply uses */
#define NET_UDP_HDR_LEN  8
#define NET_ARP_LEN      28
#define NET_ICMP_HDR_LEN 8
/* Ethernet + IPv4 + UDP headers of a reply; its payload starts here. */
#define NET_UDP_REPLY_HDRS (NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN + NET_UDP_HDR_LEN)
/* Largest UDP payload one unfragmented IPv4 datagram carries on an MTU of 1500. */
#define NET_UDP_PAYLOAD_MAX_MTU1500 (1500 - NET_IPV4_HDR_LEN - NET_UDP_HDR_LEN)
#define NET_REPLY_TTL               64

/* What the runtime does with a frame. */
enum net_verdict {
	NET_DROP = 0, /* count pkt.drop and free the frame */
	NET_REPLY,    /* an ARP or ICMP echo reply was written in place: transmit it */
	NET_UDP,      /* a UDP datagram for our address: pkt describes it */
	NET_FRAGMENT, /* an IPv4 fragment addressed to us: reassemble or count and drop */
};

/* Why a frame was dropped. The runtime keeps one counter per reason. */
enum net_drop_reason {
	NET_DROP_NONE = 0,
	NET_DROP_ETH_TRUNCATED,
	NET_DROP_ETH_NOT_US,     /* unicast to another MAC, or multicast */
	NET_DROP_ETHERTYPE,      /* neither ARP nor IPv4 (VLAN tags included) */
	NET_DROP_ARP_MALFORMED,  /* short, or not Ethernet/IPv4 ARP */
	NET_DROP_ARP_IGNORED,    /* a reply, or a request for another address */
	NET_DROP_IP_TRUNCATED,   /* frame shorter than the IPv4 header or total length */
	NET_DROP_IP_MALFORMED,   /* version, header length or total length wrong */
	NET_DROP_IP_CSUM,        /* IPv4 header checksum failed */
	NET_DROP_IP_NOT_US,      /* destination is not our address */
	NET_DROP_IP_PROTO,       /* neither ICMP nor UDP */
	NET_DROP_ICMP_MALFORMED, /* short, or checksum failed */
	NET_DROP_ICMP_IGNORED,   /* not an echo request */
	NET_DROP_UDP_MALFORMED,  /* short, or UDP length disagrees with the IPv4 length */
	NET_DROP_UDP_CSUM,       /* UDP checksum failed (and is not a partial checksum) */
	NET_DROP_REASON_COUNT,
};

/* Offload results from the NIC, as the runtime reads them from the mbuf. */
#define NET_RX_IP_CSUM_GOOD (1u << 0)
#define NET_RX_IP_CSUM_BAD  (1u << 1)
#define NET_RX_L4_CSUM_GOOD (1u << 2)
#define NET_RX_L4_CSUM_BAD  (1u << 3)

/* What the port computes on transmit. */
#define NET_TX_IP_CSUM_OFFLOAD  (1u << 0) /* leave the IPv4 checksum 0 for the NIC */
#define NET_TX_UDP_CSUM_OFFLOAD (1u << 1) /* write the pseudo-header sum for the NIC */

struct net_config {
	uint8_t mac[NET_ETH_ADDR_LEN];
	uint32_t ip_be; /* our IPv4 address */
};

struct net_pkt {
	enum net_drop_reason drop;
	uint16_t l3_off;      /* IPv4 header */
	uint16_t l4_off;      /* UDP header */
	uint16_t payload_off; /* UDP payload */
	uint16_t payload_len;
	uint16_t src_port;
	uint16_t dst_port;
	uint32_t src_ip_be;
	uint32_t dst_ip_be;
	bool partial_csum; /* accepted a veth-style partial UDP checksum */
};

/* Returns a stable name for a drop reason, for counters and logs. */
const char *net_drop_reason_name(enum net_drop_reason reason);

/*
 * Classifies the frame of len bytes. ARP requests for our address and ICMP echo requests
 * to it are turned into replies in place (their length does not change). For NET_UDP and
 * NET_FRAGMENT, pkt describes the datagram. For NET_DROP, pkt->drop says why. rx_flags are
 * NET_RX_* offload results; checksums the NIC did not check are checked here. A UDP
 * checksum equal to the folded pseudo-header sum (what veth with tx offload on delivers) is
 * accepted and flagged in pkt->partial_csum. Never reads outside frame[0, len).
 */
enum net_verdict net_classify(const struct net_config *cfg, uint8_t *frame, uint32_t len,
                              uint32_t rx_flags, struct net_pkt *pkt);

/* Both ends of a UDP datagram this node sends; addresses in network order, ports in host order. */
struct net_udp_ends {
	uint8_t src_mac[NET_ETH_ADDR_LEN];
	uint8_t dst_mac[NET_ETH_ADDR_LEN];
	uint32_t src_ip_be;
	uint32_t dst_ip_be;
	uint16_t src_port;
	uint16_t dst_port;
};

/*
 * Writes the Ethernet, IPv4 (20 bytes, no options, DF, TTL NET_REPLY_TTL) and UDP headers
 * of a datagram from e->src to e->dst into out; the caller has already placed payload_len
 * bytes of payload at out + NET_UDP_REPLY_HDRS. tx_flags (NET_TX_*) say which checksums
 * the NIC computes. Returns the frame length. payload_len must be at most 65507.
 */
uint32_t net_udp_frame(uint8_t *out, const struct net_udp_ends *e, uint16_t payload_len,
                       uint16_t ip_id, uint32_t tx_flags);

/*
 * Writes the Ethernet, IPv4 (20 bytes, no options) and UDP headers of a reply to the
 * datagram described by req (whose headers are in req_frame) into out, swapping addresses
 * and ports; the caller has already placed payload_len bytes of payload at
 * out + NET_UDP_REPLY_HDRS. out may be req_frame itself when req had no IPv4 options.
 * tx_flags (NET_TX_*) say which checksums the NIC computes. ip_id is the IPv4 identifier.
 * Returns the frame length (net_udp_frame with the request's ends swapped).
 */
uint32_t net_udp_reply(uint8_t *out, const uint8_t *req_frame, const struct net_pkt *req,
                       uint16_t payload_len, uint16_t ip_id, uint32_t tx_flags);

/*
 * Internet checksum helpers (RFC 1071). sum is a running one's complement sum of 16-bit
 * words read in memory order; every uint16_t checksum returned is in network byte order,
 * ready to be stored as it is.
 */
uint64_t net_csum_add(uint64_t sum, const void *buf, uint32_t len);
uint16_t net_csum_fold(uint64_t sum);
/* The IPv4 header checksum of the hdr_len bytes at ip (its checksum field is skipped). */
uint16_t net_ipv4_csum(const uint8_t *ip, uint32_t hdr_len);
/* The folded, uncomplemented pseudo-header sum of a UDP datagram of udp_len bytes. */
uint16_t net_udp_pseudo_sum(uint32_t src_ip_be, uint32_t dst_ip_be, uint16_t udp_len);
/* The UDP checksum of udp_len bytes at udp (checksum field read as zero); never 0. */
uint16_t net_udp_csum(uint32_t src_ip_be, uint32_t dst_ip_be, const uint8_t *udp, uint16_t udp_len);

#endif
