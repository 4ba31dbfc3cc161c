/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <string.h>

#include "common/verify.h"
#include "net.h"

#define ETHERTYPE_IPV4        0x0800
#define ETHERTYPE_ARP         0x0806
#define ARP_HTYPE_ETHER       1
#define ARP_OP_REQUEST        1
#define ARP_OP_REPLY          2
#define IPPROTO_ICMP_         1
#define IPPROTO_UDP_          17
#define IPV4_DF               0x4000 /* flags and fragment offset: don't fragment */
#define ICMP_ECHO_REPLY       0
#define ICMP_ECHO_REQUEST     8
#define IPV4_FLAG_MF          0x2000
#define IPV4_FRAG_OFFSET_MASK 0x1fff

static const char *const net_drop_names[NET_DROP_REASON_COUNT] = {
        [NET_DROP_NONE] = "none",
        [NET_DROP_ETH_TRUNCATED] = "eth_truncated",
        [NET_DROP_ETH_NOT_US] = "eth_not_us",
        [NET_DROP_ETHERTYPE] = "ethertype",
        [NET_DROP_ARP_MALFORMED] = "arp_malformed",
        [NET_DROP_ARP_IGNORED] = "arp_ignored",
        [NET_DROP_IP_TRUNCATED] = "ip_truncated",
        [NET_DROP_IP_MALFORMED] = "ip_malformed",
        [NET_DROP_IP_CSUM] = "ip_csum",
        [NET_DROP_IP_NOT_US] = "ip_not_us",
        [NET_DROP_IP_PROTO] = "ip_proto",
        [NET_DROP_ICMP_MALFORMED] = "icmp_malformed",
        [NET_DROP_ICMP_IGNORED] = "icmp_ignored",
        [NET_DROP_UDP_MALFORMED] = "udp_malformed",
        [NET_DROP_UDP_CSUM] = "udp_csum",
};

const char *
net_drop_reason_name(enum net_drop_reason reason)
{
	if ((unsigned)reason >= NET_DROP_REASON_COUNT)
		return "unknown";
	return net_drop_names[reason];
}

/* 16-bit fields in network order: one load or store and a byte swap. */
static inline uint16_t
rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return ntohs(v);
}

static inline void
wr16(uint8_t *p, uint16_t v)
{
	uint16_t be = htons(v);

	memcpy(p, &be, sizeof(be));
}

/* Raw 16-bit store of a checksum that is already in network order. */
static inline void
put_csum(uint8_t *p, uint16_t csum_be)
{
	memcpy(p, &csum_be, sizeof(csum_be));
}

static inline uint16_t
get_csum(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t
net_csum_add(uint64_t sum, const void *buf, uint32_t len)
{
	const uint8_t *p = buf;

#if defined(__x86_64__)
	if (len >= 64) {
		/*
		 * 64 bytes a step in a chain of add-with-carry, the carry of each word going into
		 * the next (dec and lea leave the carry flag alone): one instruction per 8 bytes
		 * against 5 for the loop below, which the reply datagrams' checksums feel.
		 */
		uint64_t steps = len / 64;

		__asm__("clc\n"
		        "1:\n\t"
		        "adcq 0(%[p]), %[s]\n\t"
		        "adcq 8(%[p]), %[s]\n\t"
		        "adcq 16(%[p]), %[s]\n\t"
		        "adcq 24(%[p]), %[s]\n\t"
		        "adcq 32(%[p]), %[s]\n\t"
		        "adcq 40(%[p]), %[s]\n\t"
		        "adcq 48(%[p]), %[s]\n\t"
		        "adcq 56(%[p]), %[s]\n\t"
		        "leaq 64(%[p]), %[p]\n\t"
		        "decq %[n]\n\t"
		        "jnz 1b\n\t"
		        "adcq $0, %[s]"
		        : [s] "+r"(sum), [p] "+r"(p), [n] "+r"(steps)
		        :
		        : "cc", "memory");
		len &= 63;
	}
#endif
	/*
	 * 64-bit words with the carry added back (end-around): the same ones'-complement
	 * sum as 16-bit words (RFC 1071), four at a time. Tails of 4, 2 and 1 bytes.
	 */
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		sum += w;
		sum += sum < w;
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
		sum += sum < w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		sum += w;
		sum += sum < w;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* An odd last byte is the high byte of a word in network order. */
		uint8_t last[2] = {p[0], 0};
		uint16_t w;
		memcpy(&w, last, 2);
		sum += w;
		sum += sum < w;
	}
	return sum;
}

uint16_t
net_csum_fold(uint64_t sum)
{
	/* 64 to 32 bits with the carry added back, then 32 to 16 twice: a fixed number of
	 * steps (the second 16-bit step takes the first one's carry; none is left after). */
	uint32_t lo = (uint32_t)sum;
	uint32_t hi = (uint32_t)(sum >> 32);
	uint32_t s32 = lo + hi;

	s32 += s32 < hi;
	s32 = (s32 & 0xffffu) + (s32 >> 16);
	s32 = (s32 & 0xffffu) + (s32 >> 16);
	return (uint16_t)s32;
}

uint16_t
net_ipv4_csum(const uint8_t *ip, uint32_t hdr_len)
{
	ASSERT(hdr_len >= NET_IPV4_HDR_LEN);
	ASSERT(hdr_len % 4 == 0);
	uint64_t sum = net_csum_add(0, ip, 10);
	sum = net_csum_add(sum, ip + 12, hdr_len - 12);
	return (uint16_t)~net_csum_fold(sum);
}

/*
 * What a 16-bit field holding v in network order adds to a ones'-complement sum taken in
 * memory order, as net_csum_add takes it.
 */
static inline uint64_t
word_be(uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	uint16_t w;

	memcpy(&w, b, 2);
	return w;
}

/* The two addresses' share of a sum in memory order: each is two such words already. */
static inline uint64_t
addr_words(uint32_t a_be, uint32_t b_be)
{
	return (a_be & 0xffffu) + (a_be >> 16) + (b_be & 0xffffu) + (b_be >> 16);
}

/*
 * The pseudo-header's sum, from the values rather than from bytes stored and read back
 * (a wide load over bytes just written by narrow stores waits for them to commit).
 */
static uint64_t
pseudo_sum(uint32_t src_ip_be, uint32_t dst_ip_be, uint16_t udp_len)
{
	return addr_words(src_ip_be, dst_ip_be) + word_be(IPPROTO_UDP_) + word_be(udp_len);
}

uint16_t
net_udp_pseudo_sum(uint32_t src_ip_be, uint32_t dst_ip_be, uint16_t udp_len)
{
	return net_csum_fold(pseudo_sum(src_ip_be, dst_ip_be, udp_len));
}

uint16_t
net_udp_csum(uint32_t src_ip_be, uint32_t dst_ip_be, const uint8_t *udp, uint16_t udp_len)
{
	ASSERT(udp_len >= NET_UDP_HDR_LEN);
	uint64_t sum = pseudo_sum(src_ip_be, dst_ip_be, udp_len);
	sum = net_csum_add(sum, udp, 6); /* ports and length; the checksum field counts as 0 */
	sum = net_csum_add(sum, udp + 8, udp_len - 8u);
	uint16_t c = (uint16_t)~net_csum_fold(sum);
	return c == 0 ? 0xffff : c; /* 0 means "no checksum" in UDP over IPv4 */
}

static bool
mac_is_us_or_broadcast(const struct net_config *cfg, const uint8_t *dst)
{
	static const uint8_t bcast[NET_ETH_ADDR_LEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	return memcmp(dst, cfg->mac, NET_ETH_ADDR_LEN) == 0 ||
	       memcmp(dst, bcast, NET_ETH_ADDR_LEN) == 0;
}

static enum net_verdict
drop(struct net_pkt *pkt, enum net_drop_reason reason)
{
	pkt->drop = reason;
	return NET_DROP;
}

/* Turns an ARP request for our address into our reply, in place. */
static enum net_verdict
classify_arp(const struct net_config *cfg, uint8_t *frame, uint32_t len, struct net_pkt *pkt)
{
	uint8_t *arp = frame + NET_ETH_HDR_LEN;

	if (len < NET_ETH_HDR_LEN + NET_ARP_LEN)
		return drop(pkt, NET_DROP_ARP_MALFORMED);
	if (rd16(arp) != ARP_HTYPE_ETHER || rd16(arp + 2) != ETHERTYPE_IPV4 ||
	    arp[4] != NET_ETH_ADDR_LEN || arp[5] != 4)
		return drop(pkt, NET_DROP_ARP_MALFORMED);
	uint32_t target_ip;
	memcpy(&target_ip, arp + 24, 4);
	if (rd16(arp + 6) != ARP_OP_REQUEST || target_ip != cfg->ip_be)
		return drop(pkt, NET_DROP_ARP_IGNORED);

	/* Reply: target <- sender, sender <- us. */
	uint8_t sender[NET_ETH_ADDR_LEN + 4];
	memcpy(sender, arp + 8, sizeof(sender));
	memcpy(arp + 18, sender, sizeof(sender));
	memcpy(arp + 8, cfg->mac, NET_ETH_ADDR_LEN);
	memcpy(arp + 14, &cfg->ip_be, 4);
	wr16(arp + 6, ARP_OP_REPLY);
	memcpy(frame, sender, NET_ETH_ADDR_LEN);
	memcpy(frame + NET_ETH_ADDR_LEN, cfg->mac, NET_ETH_ADDR_LEN);
	return NET_REPLY;
}

/* Turns an ICMP echo request into its reply, in place; lengths do not change. */
static enum net_verdict
classify_icmp(const struct net_config *cfg, uint8_t *frame, uint8_t *ip, uint32_t ip_hlen,
              uint32_t ip_total, uint32_t rx_flags, struct net_pkt *pkt)
{
	uint8_t *icmp = ip + ip_hlen;
	uint32_t icmp_len = ip_total - ip_hlen;

	if (icmp_len < NET_ICMP_HDR_LEN)
		return drop(pkt, NET_DROP_ICMP_MALFORMED);
	if (!(rx_flags & NET_RX_L4_CSUM_GOOD) &&
	    net_csum_fold(net_csum_add(0, icmp, icmp_len)) != 0xffff)
		return drop(pkt, NET_DROP_ICMP_MALFORMED);
	if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0)
		return drop(pkt, NET_DROP_ICMP_IGNORED);

	icmp[0] = ICMP_ECHO_REPLY;
	put_csum(icmp + 2, 0);
	put_csum(icmp + 2, (uint16_t)~net_csum_fold(net_csum_add(0, icmp, icmp_len)));
	memcpy(ip + 16, ip + 12, 4);
	memcpy(ip + 12, &cfg->ip_be, 4);
	ip[8] = NET_REPLY_TTL;
	put_csum(ip + 10, net_ipv4_csum(ip, ip_hlen));
	memcpy(frame, frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	memcpy(frame + NET_ETH_ADDR_LEN, cfg->mac, NET_ETH_ADDR_LEN);
	return NET_REPLY;
}

static enum net_verdict
classify_udp(uint8_t *ip, uint32_t ip_hlen, uint32_t ip_total, uint32_t rx_flags,
             struct net_pkt *pkt)
{
	const uint8_t *udp = ip + ip_hlen;
	uint32_t avail = ip_total - ip_hlen;

	if (avail < NET_UDP_HDR_LEN)
		return drop(pkt, NET_DROP_UDP_MALFORMED);
	uint16_t udp_len = rd16(udp + 4);
	if (udp_len < NET_UDP_HDR_LEN || udp_len != avail)
		return drop(pkt, NET_DROP_UDP_MALFORMED);
	uint16_t wire_csum = get_csum(udp + 6);
	if (wire_csum != 0 && !(rx_flags & NET_RX_L4_CSUM_GOOD)) {
		/* A full check: the sum over pseudo-header and datagram folds to all ones. */
		uint64_t sum = pseudo_sum(pkt->src_ip_be, pkt->dst_ip_be, udp_len);
		sum = net_csum_add(sum, udp, udp_len);
		if (net_csum_fold(sum) != 0xffff) {
			if (wire_csum !=
			    net_udp_pseudo_sum(pkt->src_ip_be, pkt->dst_ip_be, udp_len))
				return drop(pkt, NET_DROP_UDP_CSUM);
			pkt->partial_csum = true;
		}
	}
	pkt->src_port = rd16(udp);
	pkt->dst_port = rd16(udp + 2);
	pkt->payload_off = (uint16_t)(pkt->l4_off + NET_UDP_HDR_LEN);
	pkt->payload_len = (uint16_t)(udp_len - NET_UDP_HDR_LEN);
	return NET_UDP;
}

enum net_verdict
net_classify(const struct net_config *cfg, uint8_t *frame, uint32_t len, uint32_t rx_flags,
             struct net_pkt *pkt)
{
	ASSERT(cfg != NULL);
	ASSERT(pkt != NULL);
	memset(pkt, 0, sizeof(*pkt));

	if (len < NET_ETH_HDR_LEN)
		return drop(pkt, NET_DROP_ETH_TRUNCATED);
	if (!mac_is_us_or_broadcast(cfg, frame))
		return drop(pkt, NET_DROP_ETH_NOT_US);
	uint16_t ethertype = rd16(frame + 12);
	if (ethertype == ETHERTYPE_ARP)
		return classify_arp(cfg, frame, len, pkt);
	if (ethertype != ETHERTYPE_IPV4)
		return drop(pkt, NET_DROP_ETHERTYPE);

	uint8_t *ip = frame + NET_ETH_HDR_LEN;
	uint32_t ip_avail = len - NET_ETH_HDR_LEN;
	if (ip_avail < NET_IPV4_HDR_LEN)
		return drop(pkt, NET_DROP_IP_TRUNCATED);
	uint32_t ip_hlen = (uint32_t)(ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || ip_hlen < NET_IPV4_HDR_LEN)
		return drop(pkt, NET_DROP_IP_MALFORMED);
	uint32_t ip_total = rd16(ip + 2);
	if (ip_total < ip_hlen)
		return drop(pkt, NET_DROP_IP_MALFORMED);
	/* Frames may carry Ethernet padding past the IPv4 total length, never less. */
	if (ip_total > ip_avail)
		return drop(pkt, NET_DROP_IP_TRUNCATED);
	if (rx_flags & NET_RX_IP_CSUM_BAD)
		return drop(pkt, NET_DROP_IP_CSUM);
	if (!(rx_flags & NET_RX_IP_CSUM_GOOD) &&
	    net_csum_fold(net_csum_add(0, ip, ip_hlen)) != 0xffff)
		return drop(pkt, NET_DROP_IP_CSUM);
	memcpy(&pkt->src_ip_be, ip + 12, 4);
	memcpy(&pkt->dst_ip_be, ip + 16, 4);
	if (pkt->dst_ip_be != cfg->ip_be)
		return drop(pkt, NET_DROP_IP_NOT_US);
	pkt->l3_off = NET_ETH_HDR_LEN;
	pkt->l4_off = (uint16_t)(NET_ETH_HDR_LEN + ip_hlen);

	uint16_t frag = rd16(ip + 6);
	if ((frag & IPV4_FLAG_MF) || (frag & IPV4_FRAG_OFFSET_MASK))
		return NET_FRAGMENT;
	if (ip[9] == IPPROTO_ICMP_)
		return classify_icmp(cfg, frame, ip, ip_hlen, ip_total, rx_flags, pkt);
	if (ip[9] != IPPROTO_UDP_)
		return drop(pkt, NET_DROP_IP_PROTO);
	if (rx_flags & NET_RX_L4_CSUM_BAD) {
		/* NICs flag partial checksums as bad too; the software check decides. */
		rx_flags &= ~(NET_RX_L4_CSUM_BAD | NET_RX_L4_CSUM_GOOD);
	}
	return classify_udp(ip, ip_hlen, ip_total, rx_flags, pkt);
}

/* The body of net_udp_frame, inlined into net_udp_reply too: replies are the hot path. */
static inline __attribute__((always_inline)) uint32_t
udp_frame(uint8_t *out, const struct net_udp_ends *e, uint16_t payload_len, uint16_t ip_id,
          uint32_t tx_flags)
{
	ASSERT(payload_len <= 65535 - NET_IPV4_HDR_LEN - NET_UDP_HDR_LEN);
	uint16_t udp_len = (uint16_t)(NET_UDP_HDR_LEN + payload_len);

	memcpy(out, e->dst_mac, NET_ETH_ADDR_LEN);
	memcpy(out + NET_ETH_ADDR_LEN, e->src_mac, NET_ETH_ADDR_LEN);
	wr16(out + 12, ETHERTYPE_IPV4);

	/* The checksums are summed from the values written, not read back (pseudo_sum). */
	uint8_t *ip = out + NET_ETH_HDR_LEN;
	ip[0] = 0x45;
	ip[1] = 0;
	wr16(ip + 2, (uint16_t)(NET_IPV4_HDR_LEN + udp_len));
	wr16(ip + 4, ip_id);
	wr16(ip + 6, IPV4_DF);
	ip[8] = NET_REPLY_TTL;
	ip[9] = IPPROTO_UDP_;
	memcpy(ip + 12, &e->src_ip_be, 4);
	memcpy(ip + 16, &e->dst_ip_be, 4);
	put_csum(ip + 10, 0);
	if (!(tx_flags & NET_TX_IP_CSUM_OFFLOAD))
		put_csum(ip + 10,
		         (uint16_t)~net_csum_fold(word_be(0x4500) +
		                                  word_be((uint16_t)(NET_IPV4_HDR_LEN + udp_len)) +
		                                  word_be(ip_id) + word_be(IPV4_DF) +
		                                  word_be(NET_REPLY_TTL << 8 | IPPROTO_UDP_) +
		                                  addr_words(e->src_ip_be, e->dst_ip_be)));

	uint8_t *udp = ip + NET_IPV4_HDR_LEN;
	wr16(udp, e->src_port);
	wr16(udp + 2, e->dst_port);
	wr16(udp + 4, udp_len);
	if (tx_flags & NET_TX_UDP_CSUM_OFFLOAD) {
		put_csum(udp + 6, net_udp_pseudo_sum(e->src_ip_be, e->dst_ip_be, udp_len));
	} else {
		uint64_t sum = pseudo_sum(e->src_ip_be, e->dst_ip_be, udp_len) +
		               word_be(e->src_port) + word_be(e->dst_port) + word_be(udp_len);
		uint16_t c = (uint16_t)~net_csum_fold(
		        net_csum_add(sum, udp + NET_UDP_HDR_LEN, payload_len));
		put_csum(udp + 6, c == 0 ? 0xffff : c); /* 0 means "no checksum" in UDP over IPv4 */
	}
	return NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN + udp_len;
}

uint32_t
net_udp_frame(uint8_t *out, const struct net_udp_ends *e, uint16_t payload_len, uint16_t ip_id,
              uint32_t tx_flags)
{
	return udp_frame(out, e, payload_len, ip_id, tx_flags);
}

uint32_t
net_udp_reply(uint8_t *out, const uint8_t *req_frame, const struct net_pkt *req,
              uint16_t payload_len, uint16_t ip_id, uint32_t tx_flags)
{
	ASSERT(req->l4_off >= NET_ETH_HDR_LEN + NET_IPV4_HDR_LEN);
	struct net_udp_ends e;

	/* Read what is needed before out (possibly req_frame) is overwritten. */
	memcpy(e.dst_mac, req_frame + NET_ETH_ADDR_LEN, NET_ETH_ADDR_LEN);
	memcpy(e.src_mac, req_frame, NET_ETH_ADDR_LEN);
	e.src_ip_be = req->dst_ip_be;
	e.dst_ip_be = req->src_ip_be;
	e.src_port = req->dst_port;
	e.dst_port = req->src_port;
	return udp_frame(out, &e, payload_len, ip_id, tx_flags);
}
