/*
 * A fake libxenstat for xen_exporter's tests and benchmarks: exports the xenstat.h symbols of
 * Xen 4.17 and answers with the values of the lab captures (default-run on Xen 4.17.7:
 * 03-xl-info.txt, 12-xentop-batch-full.txt, 14-backend-statistics.txt), so the exporter's real
 * dlopen + FFI path can be checked against what xentop showed.
 *
 * Built by the tests with `cc -shared -fPIC`. Switches (compile-time -D or environment, read
 * at each call so one build serves several cases):
 *   FAKE_INIT_FAIL        / FAKE_XENSTAT_INIT_FAIL=1 : xenstat_init returns NULL (no hypervisor)
 *   FAKE_NULLS            / FAKE_XENSTAT_NULLS=1     : add domains and devices that return NULL
 *   FAKE_XENSTAT_DOMAINS=N                          : N synthetic domains (4 VCPUs, 2 vifs and
 *                                                     4 VBDs each) instead of the capture
 *   FAKE_LOG_PATH="<file>" / FAKE_XENSTAT_LOG=<file> : append one line per init/uninit/get/free
 *   FAKE_FLAGS_LOG_PATH="<file>" / FAKE_XENSTAT_FLAGS_LOG=<file>
 *                                                   : append the flags of each xenstat_get_node
 *                                                     call, in decimal, one line each
 *   FAKE_GATE_PATH="<file>" (compile-time only)     : xenstat_get_node logs "get_node_wait" and
 *                                                     waits until <file> exists (a hung library)
 *   FAKE_NO_VBD_ERROR   (compile-time only)          : omit xenstat_vbd_error (Xen < 4.13)
 *   FAKE_NO_DOMAIN_SSID (compile-time only)          : omit a required symbol
 *   FAKE_HUGE_COUNTS    (compile-time only)          : UINT_MAX domain and VCPU counts
 *   FAKE_UNRESOLVED     (compile-time only)          : depend on a symbol no library defines
 *                                                     (a library built for another release)
 * As the real library, a node taken without XENSTAT_VBD (or XENSTAT_NETWORK) lists no VBDs (or
 * networks).
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<xenstat.h>)
/* When the real header is installed, the compiler checks every signature below against it. */
#include <xenstat.h>
#define FAKE_HAVE_HEADER 1
#endif
#endif

#ifndef FAKE_HAVE_HEADER
typedef struct xenstat_handle xenstat_handle;
typedef struct xenstat_domain xenstat_domain;
typedef struct xenstat_node xenstat_node;
typedef struct xenstat_vcpu xenstat_vcpu;
typedef struct xenstat_network xenstat_network;
typedef struct xenstat_vbd xenstat_vbd;
#endif

#define KIB 1024ULL
#define MIB (1024ULL * 1024ULL)
#define SEC 1000000000ULL

struct xenstat_handle {
	unsigned long long nodes_taken;
};

struct xenstat_vcpu {
	unsigned int online;
	unsigned long long ns;
};

struct xenstat_network {
	unsigned int id;
	unsigned long long rbytes, rpackets, rerrs, rdrop;
	unsigned long long tbytes, tpackets, terrs, tdrop;
};

struct xenstat_vbd {
	unsigned int type, dev;
	unsigned long long oo_reqs, rd_reqs, wr_reqs, rd_sects, wr_sects;
	bool error;
};

struct xenstat_domain {
	unsigned int id;
	char *name; /* NULL: the domain is dying (libxenstat skips these; the exporter must too) */
	unsigned long long cpu_ns, cur_mem, max_mem;
	unsigned int ssid, dying, crashed, shutdown, paused, blocked, running;
	unsigned int num_vcpus;
	xenstat_vcpu *vcpus;
	bool *vcpu_null;
	unsigned int num_networks;
	xenstat_network *networks;
	bool *network_null;
	unsigned int num_vbds;
	xenstat_vbd *vbds;
	bool *vbd_null;
};

struct xenstat_node {
	const char *xen_version;
	unsigned long long tot_mem, free_mem, cpu_hz;
	unsigned int num_cpus;
	/* What xenstat_node_num_domains reports; may exceed `stored` to test NULL domains. */
	unsigned int num_domains;
	unsigned int stored;
	xenstat_domain *domains;
};

static bool env_flag(const char *name)
{
	const char *value = getenv(name);
	return value != NULL && strcmp(value, "1") == 0;
}

static void log_call(const char *what)
{
#ifdef FAKE_LOG_PATH
	const char *path = FAKE_LOG_PATH;
#else
	const char *path = getenv("FAKE_XENSTAT_LOG");
#endif
	if (path == NULL)
		return;
	FILE *f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%s\n", what);
	fclose(f);
}

static bool init_fails(void)
{
#ifdef FAKE_INIT_FAIL
	return true;
#else
	return env_flag("FAKE_XENSTAT_INIT_FAIL");
#endif
}

static bool with_nulls(void)
{
#ifdef FAKE_NULLS
	return true;
#else
	return env_flag("FAKE_XENSTAT_NULLS");
#endif
}

static void *zalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size);
	if (p == NULL)
		abort();
	return p;
}

static char *dup_str(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		abort();
	return p;
}

static void alloc_devices(xenstat_domain *d, unsigned vcpus, unsigned nets, unsigned vbds)
{
	d->num_vcpus = vcpus;
	d->vcpus = zalloc(vcpus, sizeof(*d->vcpus));
	d->vcpu_null = zalloc(vcpus, sizeof(bool));
	d->num_networks = nets;
	d->networks = zalloc(nets, sizeof(*d->networks));
	d->network_null = zalloc(nets, sizeof(bool));
	d->num_vbds = vbds;
	d->vbds = zalloc(vbds, sizeof(*d->vbds));
	d->vbd_null = zalloc(vbds, sizeof(bool));
}

/* The default-run capture: Domain-0 and labdomu on Xen 4.17.7 (xentop -f -n -x -v). */
static void fill_captured(xenstat_node *node)
{
	bool nulls = with_nulls();
	node->stored = nulls ? 4 : 2;
	/* One more than stored: xenstat_node_domain_by_index returns NULL for the last index. */
	node->num_domains = nulls ? node->stored + 1 : node->stored;
	node->domains = zalloc(node->stored, sizeof(xenstat_domain));

	/* Domain-0 -----r  CPU 36 s, VCPUs 0: 23s 1: 12s, MEM 786432k, MAXMEM 786432k */
	xenstat_domain *d = &node->domains[0];
	d->id = 0;
	d->name = dup_str("Domain-0");
	d->cpu_ns = 36 * SEC + 300000000ULL;
	d->cur_mem = 786432 * KIB;
	d->max_mem = 786432 * KIB;
	d->running = 1;
	alloc_devices(d, 2, 0, 0);
	d->vcpus[0] = (xenstat_vcpu){ .online = 1, .ns = 23 * SEC + 700000000ULL };
	d->vcpus[1] = (xenstat_vcpu){ .online = 1, .ns = 12 * SEC + 600000000ULL };

	/* labdomu --b---  CPU 7 s, VCPUs 0: 4s 1: 2s, MEM 131072k, MAXMEM 132096k,
	 * Net0 RX 1216 bytes 17 pkts, TX 1674 bytes 19 pkts,
	 * VBD BlkBack 51712 OO 0 RD 515 WR 512 RSECT 65560 WSECT 65536 */
	d = &node->domains[1];
	d->id = 1;
	d->name = dup_str("labdomu");
	d->cpu_ns = 7 * SEC + 100000000ULL;
	d->cur_mem = 131072 * KIB;
	d->max_mem = 132096 * KIB;
	d->blocked = 1;
	alloc_devices(d, 2, 1, 1);
	d->vcpus[0] = (xenstat_vcpu){ .online = 1, .ns = 4 * SEC + 600000000ULL };
	d->vcpus[1] = (xenstat_vcpu){ .online = 1, .ns = 2 * SEC + 500000000ULL };
	d->networks[0] = (xenstat_network){
		.id = 0, .rbytes = 1216, .rpackets = 17, .tbytes = 1674, .tpackets = 19,
	};
	d->vbds[0] = (xenstat_vbd){
		.type = 1, .dev = 51712, .oo_reqs = 0, .rd_reqs = 515, .wr_reqs = 512,
		.rd_sects = 65560, .wr_sects = 65536, .error = false,
	};

	if (!nulls)
		return;

	/* A paused guest with unlimited memory whose first network, second VCPU and first VBD
	 * return NULL (each must be skipped on its own), and whose second VBD failed to read. */
	d = &node->domains[2];
	d->id = 5;
	d->name = dup_str("nullguest");
	d->cpu_ns = 3 * SEC;
	d->cur_mem = 65536 * KIB;
	d->max_mem = ULLONG_MAX;
	d->ssid = 7;
	d->paused = 1;
	alloc_devices(d, 2, 2, 2);
	d->vcpus[0] = (xenstat_vcpu){ .online = 0, .ns = 1 * SEC };
	d->vcpu_null[1] = true;
	d->network_null[0] = true;
	d->networks[1] = (xenstat_network){
		.id = 1, .rbytes = 10, .rpackets = 1, .rerrs = 2, .rdrop = 3,
		.tbytes = 20, .tpackets = 4, .terrs = 5, .tdrop = 6,
	};
	d->vbd_null[0] = true;
	d->vbds[1] = (xenstat_vbd){
		.type = 0, .dev = 268439808, .oo_reqs = 9, .rd_reqs = 1, .wr_reqs = 2,
		.rd_sects = 3, .wr_sects = 4, .error = true,
	};

	/* A dying domain: no name in xenstore any more. */
	d = &node->domains[3];
	d->id = 6;
	d->name = NULL;
	d->dying = 1;
	alloc_devices(d, 1, 0, 0);
}

/* N synthetic domains of the benchmark's shape: 4 VCPUs, 2 vifs, 4 VBDs each. */
static void fill_synthetic(xenstat_node *node, unsigned n)
{
	node->stored = n;
	node->num_domains = n;
	node->domains = zalloc(n, sizeof(xenstat_domain));
	for (unsigned i = 0; i < n; i++) {
		xenstat_domain *d = &node->domains[i];
		char name[32];
		unsigned long long k = (unsigned long long)i + 1;
		if (i == 0)
			snprintf(name, sizeof(name), "Domain-0");
		else
			snprintf(name, sizeof(name), "guest-%04u", i);
		d->id = i;
		d->name = dup_str(name);
		d->cpu_ns = k * 4 * SEC + k;
		d->cur_mem = k * 256 * MIB;
		d->max_mem = k * 256 * MIB + 1 * MIB;
		d->running = i % 2 == 0;
		d->blocked = i % 2 == 1;
		alloc_devices(d, 4, 2, 4);
		for (unsigned v = 0; v < 4; v++)
			d->vcpus[v] = (xenstat_vcpu){ .online = 1, .ns = k * SEC + v };
		for (unsigned v = 0; v < 2; v++)
			d->networks[v] = (xenstat_network){
				.id = v, .rbytes = k * 1000 + v, .rpackets = k * 10 + v,
				.tbytes = k * 2000 + v, .tpackets = k * 20 + v,
			};
		for (unsigned v = 0; v < 4; v++)
			d->vbds[v] = (xenstat_vbd){
				.type = 1, .dev = 51712 + 16 * v, .oo_reqs = k + v,
				.rd_reqs = k * 100 + v, .wr_reqs = k * 200 + v,
				.rd_sects = k * 800 + v, .wr_sects = k * 1600 + v,
			};
	}
}

#ifdef FAKE_UNRESOLVED
extern int fake_symbol_nobody_defines(void);
#endif

xenstat_handle *xenstat_init(void)
{
#ifdef FAKE_UNRESOLVED
	if (fake_symbol_nobody_defines() != 0)
		return NULL;
#endif
	if (init_fails()) {
		/* What libxenstat does when xc_interface_open fails without a hypervisor. */
		errno = ENOENT;
		return NULL;
	}
	log_call("init");
	return zalloc(1, sizeof(xenstat_handle));
}

void xenstat_uninit(xenstat_handle *handle)
{
	if (handle == NULL)
		return;
	log_call("uninit");
	free(handle);
}

/* xenstat.h's flags, for a build without the real header. */
#define FAKE_FLAG_NETWORK 0x2
#define FAKE_FLAG_VBD 0x8

static void log_flags(unsigned int flags)
{
#ifdef FAKE_FLAGS_LOG_PATH
	const char *path = FAKE_FLAGS_LOG_PATH;
#else
	const char *path = getenv("FAKE_XENSTAT_FLAGS_LOG");
#endif
	if (path == NULL)
		return;
	FILE *f = fopen(path, "a");
	if (f == NULL)
		return;
	fprintf(f, "%u\n", flags);
	fclose(f);
}

xenstat_node *xenstat_get_node(xenstat_handle *handle, unsigned int flags)
{
	if (handle == NULL)
		return NULL;
	log_flags(flags);
#ifdef FAKE_GATE_PATH
	log_call("get_node_wait");
	while (access(FAKE_GATE_PATH, F_OK) != 0) {
		struct timespec pause = { .tv_sec = 0, .tv_nsec = 1000000 };
		nanosleep(&pause, NULL);
	}
#endif
	handle->nodes_taken++;
	xenstat_node *node = zalloc(1, sizeof(*node));
	/* 03-xl-info.txt: nr_cpus 2, cpu_mhz 2299.999, total_memory 2047 MiB, free 1256 MiB */
	node->xen_version = "4.17.7";
	node->num_cpus = 2;
	node->cpu_hz = 2299999000ULL;
	node->tot_mem = 2047 * MIB;
	node->free_mem = 1256 * MIB;
	const char *n = getenv("FAKE_XENSTAT_DOMAINS");
	if (n != NULL && atoi(n) > 0)
		fill_synthetic(node, (unsigned)atoi(n));
	else
		fill_captured(node);
	/* The devices stay allocated (xenstat_free_node frees them); they are just not listed. */
	for (unsigned i = 0; i < node->stored; i++) {
		if (!(flags & FAKE_FLAG_VBD))
			node->domains[i].num_vbds = 0;
		if (!(flags & FAKE_FLAG_NETWORK))
			node->domains[i].num_networks = 0;
	}
	log_call("get_node");
	return node;
}

void xenstat_free_node(xenstat_node *node)
{
	if (node == NULL)
		return;
	for (unsigned i = 0; i < node->stored; i++) {
		xenstat_domain *d = &node->domains[i];
		free(d->name);
		free(d->vcpus);
		free(d->vcpu_null);
		free(d->networks);
		free(d->network_null);
		free(d->vbds);
		free(d->vbd_null);
	}
	free(node->domains);
	free(node);
	log_call("free_node");
}

xenstat_domain *xenstat_node_domain(xenstat_node *node, unsigned int domid)
{
	for (unsigned i = 0; i < node->stored; i++)
		if (node->domains[i].id == domid)
			return &node->domains[i];
	return NULL;
}

xenstat_domain *xenstat_node_domain_by_index(xenstat_node *node, unsigned index)
{
	return index < node->stored ? &node->domains[index] : NULL;
}

const char *xenstat_node_xen_version(xenstat_node *node) { return node->xen_version; }
unsigned long long xenstat_node_tot_mem(xenstat_node *node) { return node->tot_mem; }
unsigned long long xenstat_node_free_mem(xenstat_node *node) { return node->free_mem; }
long xenstat_node_freeable_mb(xenstat_node *node) { (void)node; return 0; }
#ifdef FAKE_HUGE_COUNTS
/* An ABI-mismatched library answering garbage counts. */
unsigned int xenstat_node_num_domains(xenstat_node *node) { (void)node; return UINT_MAX; }
#else
unsigned int xenstat_node_num_domains(xenstat_node *node) { return node->num_domains; }
#endif
unsigned int xenstat_node_num_cpus(xenstat_node *node) { return node->num_cpus; }
unsigned long long xenstat_node_cpu_hz(xenstat_node *node) { return node->cpu_hz; }

unsigned xenstat_domain_id(xenstat_domain *d) { return d->id; }
char *xenstat_domain_name(xenstat_domain *d) { return d->name; }
unsigned long long xenstat_domain_cpu_ns(xenstat_domain *d) { return d->cpu_ns; }
#ifdef FAKE_HUGE_COUNTS
unsigned int xenstat_domain_num_vcpus(xenstat_domain *d) { (void)d; return UINT_MAX; }
#else
unsigned int xenstat_domain_num_vcpus(xenstat_domain *d) { return d->num_vcpus; }
#endif
unsigned long long xenstat_domain_cur_mem(xenstat_domain *d) { return d->cur_mem; }
unsigned long long xenstat_domain_max_mem(xenstat_domain *d) { return d->max_mem; }
#ifndef FAKE_NO_DOMAIN_SSID
unsigned int xenstat_domain_ssid(xenstat_domain *d) { return d->ssid; }
#endif
unsigned int xenstat_domain_dying(xenstat_domain *d) { return d->dying; }
unsigned int xenstat_domain_crashed(xenstat_domain *d) { return d->crashed; }
unsigned int xenstat_domain_shutdown(xenstat_domain *d) { return d->shutdown; }
unsigned int xenstat_domain_paused(xenstat_domain *d) { return d->paused; }
unsigned int xenstat_domain_blocked(xenstat_domain *d) { return d->blocked; }
unsigned int xenstat_domain_running(xenstat_domain *d) { return d->running; }
unsigned int xenstat_domain_num_networks(xenstat_domain *d) { return d->num_networks; }
unsigned int xenstat_domain_num_vbds(xenstat_domain *d) { return d->num_vbds; }

xenstat_vcpu *xenstat_domain_vcpu(xenstat_domain *d, unsigned int vcpu)
{
	if (vcpu >= d->num_vcpus || d->vcpu_null[vcpu])
		return NULL;
	return &d->vcpus[vcpu];
}

xenstat_network *xenstat_domain_network(xenstat_domain *d, unsigned int network)
{
	if (network >= d->num_networks || d->network_null[network])
		return NULL;
	return &d->networks[network];
}

xenstat_vbd *xenstat_domain_vbd(xenstat_domain *d, unsigned int vbd)
{
	if (vbd >= d->num_vbds || d->vbd_null[vbd])
		return NULL;
	return &d->vbds[vbd];
}

unsigned int xenstat_vcpu_online(xenstat_vcpu *v) { return v->online; }
unsigned long long xenstat_vcpu_ns(xenstat_vcpu *v) { return v->ns; }

unsigned int xenstat_network_id(xenstat_network *n) { return n->id; }
unsigned long long xenstat_network_rbytes(xenstat_network *n) { return n->rbytes; }
unsigned long long xenstat_network_rpackets(xenstat_network *n) { return n->rpackets; }
unsigned long long xenstat_network_rerrs(xenstat_network *n) { return n->rerrs; }
unsigned long long xenstat_network_rdrop(xenstat_network *n) { return n->rdrop; }
unsigned long long xenstat_network_tbytes(xenstat_network *n) { return n->tbytes; }
unsigned long long xenstat_network_tpackets(xenstat_network *n) { return n->tpackets; }
unsigned long long xenstat_network_terrs(xenstat_network *n) { return n->terrs; }
unsigned long long xenstat_network_tdrop(xenstat_network *n) { return n->tdrop; }

unsigned int xenstat_vbd_type(xenstat_vbd *v) { return v->type; }
unsigned int xenstat_vbd_dev(xenstat_vbd *v) { return v->dev; }
unsigned long long xenstat_vbd_oo_reqs(xenstat_vbd *v) { return v->oo_reqs; }
unsigned long long xenstat_vbd_rd_reqs(xenstat_vbd *v) { return v->rd_reqs; }
unsigned long long xenstat_vbd_wr_reqs(xenstat_vbd *v) { return v->wr_reqs; }
unsigned long long xenstat_vbd_rd_sects(xenstat_vbd *v) { return v->rd_sects; }
unsigned long long xenstat_vbd_wr_sects(xenstat_vbd *v) { return v->wr_sects; }
#ifndef FAKE_NO_VBD_ERROR
bool xenstat_vbd_error(xenstat_vbd *v) { return v->error; }
#endif
