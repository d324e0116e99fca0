#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/recover.h"
#include "http/metrics.h"
#include "http/server.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

static const int statuses[] = { 200, 201, 204, 301, 303, 304, 400, 401, 403, 404, 405,
				409, 413, 415, 422, 429, 500, 503 };
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]) + 1)  /* + "other" */

static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				  0.1, 0.25, 0.5, 1, 2.5, 5 };
#define NBUCKET (sizeof(buckets) / sizeof(buckets[0]))


struct route_stats {
	const char *name;
	const char *method;
	atomic_uint_fast64_t count[NSTATUS];
	atomic_uint_fast64_t bucket[NBUCKET];
	atomic_uint_fast64_t total;
	atomic_uint_fast64_t micros;
};

static struct route_stats *stats;   /* one per route, then "unmatched" */
static size_t nstats;
static atomic_uint_fast64_t escrowed;

int metrics_init(const struct route *routes)
{
	size_t n = 0;

	while (routes[n].method)
		n++;
	metrics_free();
	if (!(stats = calloc(n + 1, sizeof(*stats))))
		return KW_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		stats[i].name = routes[i].pattern;
		stats[i].method = routes[i].method;
	}
	stats[n].name = "unmatched";
	stats[n].method = "";
	nstats = n + 1;
	return 0;
}

void metrics_free(void)
{
	free(stats);
	stats = NULL;
	nstats = 0;
}

void metrics_request(int route_index, int status, int64_t micros)
{
	struct route_stats *r;
	size_t si = NSTATUS - 1;
	double secs = (double)micros / 1e6;

	if (!stats)
		return;
	r = &stats[(route_index < 0 || (size_t)route_index >= nstats - 1) ?
		   nstats - 1 : (size_t)route_index];
	for (size_t i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			si = i;
	atomic_fetch_add_explicit(&r->count[si], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->total, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->micros, (uint64_t)(micros > 0 ? micros : 0),
				  memory_order_relaxed);
	for (size_t b = 0; b < NBUCKET; b++)
		if (secs <= buckets[b]) {
			atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
			break;
		}
}

void metrics_escrowed(uint64_t keys)
{
	atomic_fetch_add_explicit(&escrowed, keys, memory_order_relaxed);
}

int metrics_render(struct buf *out)
{
	const char *source, *result;
	uint64_t count;
	int rc = 0;

	rc |= buf_puts(out, "# HELP keywarden_http_requests_total HTTP requests by route "
		       "and status.\n# TYPE keywarden_http_requests_total counter\n");
	for (size_t i = 0; i < nstats; i++)
		for (size_t s = 0; s < NSTATUS; s++) {
			uint64_t n = atomic_load(&stats[i].count[s]);

			if (!n)
				continue;
			if (s < NSTATUS - 1)
				rc |= buf_printf(out, "keywarden_http_requests_total{method=\"%s\","
						 "route=\"%s\",status=\"%d\"} %llu\n",
						 stats[i].method, stats[i].name, statuses[s],
						 (unsigned long long)n);
			else
				rc |= buf_printf(out, "keywarden_http_requests_total{method=\"%s\","
						 "route=\"%s\",status=\"other\"} %llu\n",
						 stats[i].method, stats[i].name,
						 (unsigned long long)n);
		}
	rc |= buf_puts(out, "# HELP keywarden_http_request_duration_seconds Time to answer "
		       "a request, by route.\n"
		       "# TYPE keywarden_http_request_duration_seconds histogram\n");
	for (size_t i = 0; i < nstats; i++) {
		uint64_t total = atomic_load(&stats[i].total), cum = 0;

		if (!total)
			continue;
		for (size_t b = 0; b < NBUCKET; b++) {
			cum += atomic_load(&stats[i].bucket[b]);
			rc |= buf_printf(out, "keywarden_http_request_duration_seconds_bucket{"
					 "method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
					 stats[i].method, stats[i].name, buckets[b],
					 (unsigned long long)cum);
		}
		rc |= buf_printf(out, "keywarden_http_request_duration_seconds_bucket{method=\"%s\","
				 "route=\"%s\",le=\"+Inf\"} %llu\n"
				 "keywarden_http_request_duration_seconds_sum{method=\"%s\","
				 "route=\"%s\"} %.6f\n"
				 "keywarden_http_request_duration_seconds_count{method=\"%s\","
				 "route=\"%s\"} %llu\n",
				 stats[i].method, stats[i].name, (unsigned long long)total,
				 stats[i].method, stats[i].name,
				 (double)atomic_load(&stats[i].micros) / 1e6,
				 stats[i].method, stats[i].name, (unsigned long long)total);
	}
	rc |= buf_printf(out, "# HELP keywarden_escrowed_keys_total Recovery keys escrowed "
			 "by check-ins.\n# TYPE keywarden_escrowed_keys_total counter\n"
			 "keywarden_escrowed_keys_total %llu\n",
			 (unsigned long long)atomic_load(&escrowed));
	rc |= buf_puts(out, "# HELP keywarden_disclosures_total Key recovery requests by "
		       "source and result.\n# TYPE keywarden_disclosures_total counter\n");
	for (size_t i = 0; recover_counter(i, &source, &result, &count); i++)
		rc |= buf_printf(out, "keywarden_disclosures_total{source=\"%s\","
				 "result=\"%s\"} %llu\n", source, result,
				 (unsigned long long)count);
	rc |= buf_printf(out, "# HELP keywarden_store_batched_jobs_total Writes (check-ins) "
			 "written in a batch with others of their kind (one statement a table for "
			 "all of them), before their commit.\n# TYPE keywarden_store_batched_jobs_total counter\n"
			 "keywarden_store_batched_jobs_total %llu\n",
			 (unsigned long long)store_batched());
	rc |= buf_printf(out, "# HELP keywarden_store_errors_total Database operations "
			 "that failed.\n# TYPE keywarden_store_errors_total counter\n"
			 "keywarden_store_errors_total %llu\n",
			 (unsigned long long)store_errors());
	rc |= buf_printf(out, "# HELP keywarden_store_state Write health of the store: 0 "
			 "writes work, 1 writes are failing, 2 a restart is needed.\n"
			 "# TYPE keywarden_store_state gauge\n"
			 "keywarden_store_state %d\n", (int)store_last_state());
	rc |= buf_printf(out, "# HELP keywarden_audit_search_lag_records Audit records the "
			 "audit report's search file has not got yet (reports read them from "
			 "the audit trail, slower).\n"
			 "# TYPE keywarden_audit_search_lag_records gauge\n"
			 "keywarden_audit_search_lag_records %lld\n",
			 (long long)store_search_lag());
	return rc ? KW_ERR_NOMEM : 0;
}
