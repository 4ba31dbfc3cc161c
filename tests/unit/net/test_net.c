/* SPDX-License-Identifier: BSD-3-Clause */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"

static const uint8_t our_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

static struct net_config
our_cfg(void)
{
	struct net_config c;
	memcpy(c.mac, our_mac, 6);
	c.ip_be = inet_addr("10.9.0.1");
	return c;
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Builds a UDP frame from the peer to us; returns its length. */
static uint32_t
make_udp(uint8_t *f, const void *payload, uint16_t plen, uint16_t dport, int csum_mode)
{
	memset(f, 0, 64);
	memcpy(f, our_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + 14;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + 8 + plen));
	put16(ip + 4, 7);
	ip[8] = 64;
	ip[9] = 17;
	uint32_t src = inet_addr("10.9.0.2"), dst = inet_addr("10.9.0.1");
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	uint16_t c = net_ipv4_csum(ip, 20);
	memcpy(ip + 10, &c, 2);
	uint8_t *udp = ip + 20;
	put16(udp, 40000);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + plen));
	memcpy(udp + 8, payload, plen);
	uint16_t uc = 0;
	if (csum_mode == 1)
		uc = net_udp_csum(src, dst, udp, (uint16_t)(8 + plen));
	else if (csum_mode == 2)
		uc = net_udp_pseudo_sum(src, dst, (uint16_t)(8 + plen));
	memcpy(udp + 6, &uc, 2);
	return 14 + 20 + 8 + plen;
}

static void
test_udp_valid_and_reply(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256];
	struct net_pkt pkt;
	for (int mode = 0; mode < 3; mode++) {
		uint32_t len = make_udp(f, "hello", 5, 9000, mode);
		assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_UDP);
		assert_int_equal(pkt.dst_port, 9000);
		assert_int_equal(pkt.src_port, 40000);
		assert_int_equal(pkt.payload_len, 5);
		assert_memory_equal(f + pkt.payload_off, "hello", 5);
		assert_int_equal(pkt.partial_csum, mode == 2);
	}
	/* A reply built in place must classify cleanly from the peer's side. */
	uint32_t len = make_udp(f, "hello", 5, 9000, 1);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_UDP);
	memcpy(f + NET_UDP_REPLY_HDRS, "world!", 6);
	uint32_t rlen = net_udp_reply(f, f, &pkt, 6, 99, 0);
	assert_int_equal(rlen, NET_UDP_REPLY_HDRS + 6);
	struct net_config peer;
	memcpy(peer.mac, peer_mac, 6);
	peer.ip_be = inet_addr("10.9.0.2");
	struct net_pkt back;
	assert_int_equal(net_classify(&peer, f, rlen, 0, &back), NET_UDP);
	assert_int_equal(back.src_port, 9000);
	assert_int_equal(back.dst_port, 40000);
	assert_int_equal(back.payload_len, 6);
	assert_false(back.partial_csum);
	assert_memory_equal(f + back.payload_off, "world!", 6);
	assert_memory_equal(f + 6, our_mac, 6);
}

static void
test_udp_reply_with_offload_flags(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256], out[256];
	struct net_pkt pkt;
	uint32_t len = make_udp(f, "abc", 3, 11211, 1);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_UDP);
	memcpy(out + NET_UDP_REPLY_HDRS, "xyz", 3);
	uint32_t rlen =
	        net_udp_reply(out, f, &pkt, 3, 1, NET_TX_IP_CSUM_OFFLOAD | NET_TX_UDP_CSUM_OFFLOAD);
	assert_int_equal(rlen, NET_UDP_REPLY_HDRS + 3);
	/* IPv4 checksum left at zero, UDP holds the pseudo-header sum for the NIC. */
	assert_int_equal(out[14 + 10], 0);
	assert_int_equal(out[14 + 11], 0);
	uint16_t ph = net_udp_pseudo_sum(cfg.ip_be, inet_addr("10.9.0.2"), 11);
	assert_memory_equal(out + 14 + 20 + 6, &ph, 2);
}

static void
test_udp_bad_checksums_and_lengths(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256];
	struct net_pkt pkt;
	uint32_t len = make_udp(f, "hello", 5, 9000, 1);
	f[len - 1] ^= 0x5a; /* payload corrupted under a full checksum */
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_UDP_CSUM);
	/* The NIC vouching for it skips the software check. */
	assert_int_equal(net_classify(&cfg, f, len, NET_RX_L4_CSUM_GOOD, &pkt), NET_UDP);

	len = make_udp(f, "hello", 5, 9000, 1);
	f[14 + 10] ^= 1;
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_IP_CSUM);
	len = make_udp(f, "hello", 5, 9000, 1);
	assert_int_equal(net_classify(&cfg, f, len, NET_RX_IP_CSUM_BAD, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_IP_CSUM);

	len = make_udp(f, "hello", 5, 9000, 0);
	put16(f + 14 + 20 + 4, 100); /* UDP length beyond the IPv4 length */
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_UDP_MALFORMED);

	len = make_udp(f, "hello", 5, 9000, 0);
	/* Ethernet padding after the datagram is fine. */
	memset(f + len, 0, 20);
	assert_int_equal(net_classify(&cfg, f, len + 20, 0, &pkt), NET_UDP);
	assert_int_equal(pkt.payload_len, 5);
}

static void
test_every_truncation_is_dropped(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256];
	struct net_pkt pkt;
	uint32_t full = make_udp(f, "0123456789", 10, 9000, 1);
	for (uint32_t len = 0; len < full; len++) {
		uint8_t copy[256];
		memcpy(copy, f, full);
		assert_int_equal(net_classify(&cfg, copy, len, 0, &pkt), NET_DROP);
		assert_int_not_equal(pkt.drop, NET_DROP_NONE);
	}
}

static void
test_not_for_us(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256];
	struct net_pkt pkt;
	uint32_t len = make_udp(f, "x", 1, 9000, 1);
	f[0] = 0x04;
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ETH_NOT_US);
	len = make_udp(f, "x", 1, 9000, 0);
	uint32_t other = inet_addr("10.9.0.77");
	memcpy(f + 14 + 16, &other, 4);
	uint16_t c = net_ipv4_csum(f + 14, 20);
	memcpy(f + 14 + 10, &c, 2);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_IP_NOT_US);
	len = make_udp(f, "x", 1, 9000, 0);
	put16(f + 12, 0x86dd);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ETHERTYPE);
	len = make_udp(f, "x", 1, 9000, 0);
	f[14 + 9] = 6; /* TCP */
	c = 0;
	memcpy(f + 14 + 10, &c, 2);
	c = net_ipv4_csum(f + 14, 20);
	memcpy(f + 14 + 10, &c, 2);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_IP_PROTO);
	assert_string_equal(net_drop_reason_name(NET_DROP_IP_PROTO), "ip_proto");
	assert_string_equal(net_drop_reason_name(NET_DROP_REASON_COUNT), "unknown");
}

static void
test_fragment_reported(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[256];
	struct net_pkt pkt;
	uint32_t len = make_udp(f, "frag", 4, 11211, 0);
	put16(f + 14 + 6, 0x2000); /* more fragments */
	uint16_t c = 0;
	memcpy(f + 14 + 10, &c, 2);
	c = net_ipv4_csum(f + 14, 20);
	memcpy(f + 14 + 10, &c, 2);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_FRAGMENT);
	assert_int_equal(pkt.l3_off, 14);
}

static void
test_arp_request_answered(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[64] = {0};
	struct net_pkt pkt;
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0806);
	uint8_t *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, peer_mac, 6);
	uint32_t sip = inet_addr("10.9.0.2"), tip = cfg.ip_be;
	memcpy(a + 14, &sip, 4);
	memcpy(a + 24, &tip, 4);
	uint8_t saved[64];
	memcpy(saved, f, sizeof(f));
	assert_int_equal(net_classify(&cfg, f, 60, 0, &pkt), NET_REPLY);
	assert_memory_equal(f, peer_mac, 6);
	assert_memory_equal(f + 6, our_mac, 6);
	assert_int_equal(a[7], 2);
	assert_memory_equal(a + 8, our_mac, 6);
	assert_memory_equal(a + 14, &tip, 4);
	assert_memory_equal(a + 18, peer_mac, 6);
	assert_memory_equal(a + 24, &sip, 4);
	/* A request for someone else, and a reply, are ignored. */
	memcpy(f, saved, sizeof(f));
	uint32_t other = inet_addr("10.9.0.3");
	memcpy(a + 24, &other, 4);
	assert_int_equal(net_classify(&cfg, f, 60, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ARP_IGNORED);
	memcpy(f, saved, sizeof(f));
	put16(a + 6, 2);
	assert_int_equal(net_classify(&cfg, f, 60, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ARP_IGNORED);
	memcpy(f, saved, sizeof(f));
	assert_int_equal(net_classify(&cfg, f, 14 + 27, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ARP_MALFORMED);
}

static void
test_icmp_echo_answered(void **state)
{
	(void)state;
	struct net_config cfg = our_cfg();
	uint8_t f[128];
	struct net_pkt pkt;
	uint32_t len = make_udp(f, "pingdata", 8, 0, 0);
	uint8_t *ip = f + 14;
	ip[9] = 1;
	uint8_t *icmp = ip + 20; /* 8-byte header where UDP was, then 8 data bytes */
	icmp[0] = 8;
	icmp[1] = 0;
	put16(icmp + 4, 0x1234);
	put16(icmp + 6, 1);
	memcpy(icmp + 8, "pingdata", 8);
	icmp[2] = icmp[3] = 0;
	uint16_t c = (uint16_t)~net_csum_fold(net_csum_add(0, icmp, 16));
	memcpy(icmp + 2, &c, 2);
	c = 0;
	memcpy(ip + 10, &c, 2);
	c = net_ipv4_csum(ip, 20);
	memcpy(ip + 10, &c, 2);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_REPLY);
	assert_int_equal(icmp[0], 0);
	assert_int_equal(net_csum_fold(net_csum_add(0, icmp, 16)), 0xffff);
	assert_int_equal(net_csum_fold(net_csum_add(0, ip, 20)), 0xffff);
	assert_memory_equal(ip + 12, &cfg.ip_be, 4);
	assert_memory_equal(f, peer_mac, 6);
	/* The reply is addressed to the peer; sent back to us, an echo reply is ignored. */
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ETH_NOT_US);
	memcpy(f, our_mac, 6);
	memcpy(ip + 16, &cfg.ip_be, 4);
	c = 0;
	memcpy(ip + 10, &c, 2);
	c = net_ipv4_csum(ip, 20);
	memcpy(ip + 10, &c, 2);
	assert_int_equal(net_classify(&cfg, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_ICMP_IGNORED);
}

/* The seed of a random test: SP_TEST_SEED when set, else def; printed for a replay. */
static unsigned
test_seed(const char *test, unsigned def)
{
	const char *env = getenv("SP_TEST_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : def;

	printf("%s: seed %u (replay: SP_TEST_SEED=%u)\n", test, seed, seed);
	return seed;
}

/* RFC 1071 the slow way: 16-bit words in memory order, carries folded as they come. */
static uint16_t
reference_csum(const uint8_t *p, uint32_t len)
{
	uint32_t sum = 0;
	uint32_t i;

	for (i = 0; i + 1 < len; i += 2) {
		uint16_t w;
		memcpy(&w, p + i, 2);
		sum += w;
		sum = (sum & 0xffff) + (sum >> 16);
	}
	if (len & 1) {
		uint8_t last[2] = {p[len - 1], 0};
		uint16_t w;
		memcpy(&w, last, 2);
		sum += w;
		sum = (sum & 0xffff) + (sum >> 16);
	}
	return (uint16_t)sum;
}

/* The fold step by step, as RFC 1071 states it. */
static uint16_t
fold_slowly(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* net_csum_fold's fixed steps fold every sum as the loop does: edges and random sums. */
static void
test_csum_fold_matches_loop(void **state)
{
	(void)state;
	static const uint64_t edges[] = {
	        0,           1,           0xffff,         0x10000,    0x1fffe,        0xffffffff,
	        0x100000000, 0x1ffffffff, 0xffff0000ffff, UINT64_MAX, UINT64_MAX - 1, 1ull << 63};

	for (unsigned i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		assert_int_equal(net_csum_fold(edges[i]), fold_slowly(edges[i]));
	srand(test_seed("test_csum_fold_matches_loop", 0xf01du));
	for (int i = 0; i < 100000; i++) {
		uint64_t v = (uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^ (uint64_t)rand();

		assert_int_equal(net_csum_fold(v), fold_slowly(v));
	}
}

static void
test_csum_matches_reference(void **state)
{
	(void)state;
	uint8_t buf[1600];

	srand(test_seed("test_csum_matches_reference", 0xc5c5u));
	for (int round = 0; round < 4000; round++) {
		uint32_t len = (uint32_t)rand() % sizeof(buf);
		uint32_t off = (uint32_t)rand() % 8;
		/* Every other round all 0xff: the carries are at their worst. */
		for (uint32_t i = 0; i < len; i++)
			buf[i] = (round & 1) ? 0xff : (uint8_t)rand();
		len = len > off ? len - off : 0;
		assert_int_equal(net_csum_fold(net_csum_add(0, buf + off, len)),
		                 reference_csum(buf + off, len));
		/* Sums chain: two halves added in turn give the sum of the whole (even split). */
		uint32_t half = (len / 2) & ~1u;
		assert_int_equal(net_csum_fold(net_csum_add(net_csum_add(0, buf + off, half),
		                                            buf + off + half, len - half)),
		                 reference_csum(buf + off, len));
	}
}

/*
 * net_udp_reply sums its headers from the values it writes: over random addresses, ports,
 * ids and payloads (odd and even lengths, all-ones bytes for the worst carries), the
 * headers it wrote must sum to all ones under the reference sum, with and without the
 * pseudo-header, and the offload form must hold the pseudo-header sum.
 */
static void
test_udp_reply_csums_random(void **state)
{
	(void)state;
	uint8_t out[1600];
	uint8_t req[64];

	srand(test_seed("test_udp_reply_csums_random", 0x7e91u));
	memset(req, 0, sizeof(req));
	memcpy(req, our_mac, 6);
	memcpy(req + 6, peer_mac, 6);
	for (int round = 0; round < 3000; round++) {
		struct net_pkt pkt = {.l3_off = 14, .l4_off = 34, .payload_off = 42};
		uint16_t plen = (uint16_t)((uint32_t)rand() % (sizeof(out) - NET_UDP_REPLY_HDRS));
		uint16_t ip_id = (uint16_t)rand();
		uint8_t ph[12];

		pkt.src_ip_be = (uint32_t)rand() << 16 ^ (uint32_t)rand();
		pkt.dst_ip_be =
		        (round & 3) == 0 ? 0xffffffffu : (uint32_t)rand() << 1 ^ (uint32_t)rand();
		pkt.src_port = (uint16_t)rand();
		pkt.dst_port = (round & 3) == 0 ? 0xffff : (uint16_t)rand();
		for (uint32_t i = 0; i < plen; i++)
			out[NET_UDP_REPLY_HDRS + i] = (round & 1) ? 0xff : (uint8_t)rand();
		uint32_t len = net_udp_reply(out, req, &pkt, plen, ip_id, 0);
		assert_int_equal(len, NET_UDP_REPLY_HDRS + plen);
		assert_int_equal(reference_csum(out + 14, 20), 0xffff);
		/* The UDP sum: pseudo-header (ours as source), then header and payload. */
		memcpy(ph, &pkt.dst_ip_be, 4);
		memcpy(ph + 4, &pkt.src_ip_be, 4);
		ph[8] = 0;
		ph[9] = 17;
		put16(ph + 10, (uint16_t)(8 + plen));
		uint32_t sum =
		        (uint32_t)reference_csum(ph, 12) + reference_csum(out + 34, 8u + plen);
		sum = (sum & 0xffff) + (sum >> 16);
		assert_int_equal(sum, 0xffff);
		assert_false(out[40] == 0 && out[41] == 0); /* 0 would mean "no checksum" */

		len = net_udp_reply(out, req, &pkt, plen, ip_id,
		                    NET_TX_IP_CSUM_OFFLOAD | NET_TX_UDP_CSUM_OFFLOAD);
		assert_int_equal(len, NET_UDP_REPLY_HDRS + plen);
		assert_int_equal(out[24], 0);
		assert_int_equal(out[25], 0);
		uint16_t want =
		        net_udp_pseudo_sum(pkt.dst_ip_be, pkt.src_ip_be, (uint16_t)(8 + plen));
		assert_memory_equal(out + 40, &want, 2);
	}
}

/*
 * net_udp_frame builds a datagram from one node to another: the receiver's net_classify
 * accepts it (software checksums and the offload form flagged as checked) and finds the
 * ends and payload it was given.
 */
static void
test_udp_frame_classifies_at_receiver(void **state)
{
	(void)state;
	struct net_config peer = {.ip_be = inet_addr("10.9.0.2")};
	struct net_udp_ends e = {
	        .src_ip_be = inet_addr("10.9.0.1"),
	        .dst_ip_be = inet_addr("10.9.0.2"),
	        .src_port = 9001,
	        .dst_port = 40123,
	};
	uint8_t f[256];
	struct net_pkt pkt;

	memcpy(peer.mac, peer_mac, 6);
	memcpy(e.src_mac, our_mac, 6);
	memcpy(e.dst_mac, peer_mac, 6);
	for (int offload = 0; offload < 2; offload++) {
		uint32_t flags = offload ? NET_TX_UDP_CSUM_OFFLOAD : 0;
		uint32_t rx = offload ? NET_RX_IP_CSUM_GOOD | NET_RX_L4_CSUM_GOOD : 0;

		memset(f, 0xa5, sizeof(f));
		memcpy(f + NET_UDP_REPLY_HDRS, "payload!", 8);
		uint32_t len = net_udp_frame(f, &e, 8, 0x1234, flags);
		assert_int_equal(len, NET_UDP_REPLY_HDRS + 8);
		assert_memory_equal(f, peer_mac, 6);
		assert_memory_equal(f + 6, our_mac, 6);
		assert_int_equal(net_classify(&peer, f, len, rx, &pkt), NET_UDP);
		assert_int_equal(pkt.src_ip_be, e.src_ip_be);
		assert_int_equal(pkt.dst_ip_be, e.dst_ip_be);
		assert_int_equal(pkt.src_port, 9001);
		assert_int_equal(pkt.dst_port, 40123);
		assert_int_equal(pkt.payload_len, 8);
		assert_memory_equal(f + pkt.payload_off, "payload!", 8);
		assert_int_equal(f[18] << 8 | f[19], 0x1234);
	}
	/* A corrupted byte is caught by the software checksum. */
	memcpy(f + NET_UDP_REPLY_HDRS, "payload!", 8);
	uint32_t len = net_udp_frame(f, &e, 8, 1, 0);
	f[NET_UDP_REPLY_HDRS] ^= 1;
	assert_int_equal(net_classify(&peer, f, len, 0, &pkt), NET_DROP);
	assert_int_equal(pkt.drop, NET_DROP_UDP_CSUM);
}

static void
test_random_frames_never_misbehave(void **state)
{
	(void)state;
	srand(test_seed("test_random_frames_never_misbehave", 0x5eed1234u));
	struct net_config cfg = our_cfg();
	uint8_t base[256];
	uint32_t full = make_udp(base, "0123456789abcdef", 16, 9000, 1);
	for (int i = 0; i < 200000; i++) {
		uint32_t len = (uint32_t)rand() % (full + 1);
		uint8_t *f = malloc(len ? len : 1); /* exact size: ASan catches any overread */
		memcpy(f, base, len);
		int flips = rand() % 4;
		for (int k = 0; k < flips && len; k++)
			f[(uint32_t)rand() % len] ^= (uint8_t)(1u << (rand() % 8));
		struct net_pkt pkt;
		enum net_verdict v = net_classify(&cfg, f, len, (uint32_t)rand() & 0xf, &pkt);
		if (v == NET_UDP) {
			assert_true((uint32_t)pkt.payload_off + pkt.payload_len <= len);
		} else if (v == NET_DROP) {
			assert_int_not_equal(pkt.drop, NET_DROP_NONE);
		}
		free(f);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_udp_valid_and_reply),
	        cmocka_unit_test(test_udp_reply_with_offload_flags),
	        cmocka_unit_test(test_udp_bad_checksums_and_lengths),
	        cmocka_unit_test(test_every_truncation_is_dropped),
	        cmocka_unit_test(test_not_for_us),
	        cmocka_unit_test(test_fragment_reported),
	        cmocka_unit_test(test_arp_request_answered),
	        cmocka_unit_test(test_icmp_echo_answered),
	        cmocka_unit_test(test_random_frames_never_misbehave),
	        cmocka_unit_test(test_csum_matches_reference),
	        cmocka_unit_test(test_csum_fold_matches_loop),
	        cmocka_unit_test(test_udp_reply_csums_random),
	        cmocka_unit_test(test_udp_frame_classifies_at_receiver),
	};
	return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
