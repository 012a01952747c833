/*
 * Helpers shared by the C tests (dm_test.c, community_test.c): checks that record a failure
 * without stopping the scenario, a few JSON lookups on the library's own output shapes,
 * bundles built from a device's publish plan as the key server hands them out, DM
 * encrypt/decrypt, and the scenario runner.
 */
#ifndef SPOTS_TEST_COMMON_H
#define SPOTS_TEST_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spots_signal.h"

#define UNUSED_OK __attribute__((unused))

UNUSED_OK static const uint64_t NOW = 1800000000000ULL;
UNUSED_OK static uint8_t KEY_A[32], KEY_B[32];
UNUSED_OK static char DIR_[512];
UNUSED_OK static int scenario_failed;

static inline void fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "  FAIL %s:%d: ", file, line);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  const char *last = spots_last_error_message();
  fprintf(stderr, "%s%s\n", last ? " | last error: " : "", last ? last : "");
  scenario_failed = 1;
}
#define CHECK(cond, ...) \
  do { if (!(cond)) fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define EXPECT(call, want)                                                        \
  do {                                                                            \
    SpotsStatus st_ = (call);                                                     \
    if (st_ != (want)) fail(__FILE__, __LINE__, "%s -> %d, want %d", #call, st_, \
                            (int)(want));                                         \
  } while (0)
#define OK(call) EXPECT(call, SPOTS_STATUS_OK)

static inline char *path_in(const char *name) {
  static char buf[8][600];
  static int next;
  char *out = buf[next++ % 8];
  snprintf(out, 600, "%s/%s", DIR_, name);
  return out;
}

/* ---- a few JSON lookups on the library's own, known output shapes ---- */

/* The value after "key": at or after `from`, or NULL. */
static inline const char *json_at(const char *from, const char *key) {
  char pattern[128];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *p = from ? strstr(from, pattern) : NULL;
  return p ? p + strlen(pattern) : NULL;
}
static inline unsigned long json_uint(const char *from, const char *key) {
  const char *p = json_at(from, key);
  return p ? strtoul(p, NULL, 10) : 0;
}
/* Copies a string value (without quotes) into out. */
static inline int json_str(const char *from, const char *key, char *out, size_t cap) {
  const char *p = json_at(from, key);
  if (!p || *p != '"') return 0;
  const char *end = strchr(p + 1, '"');
  if (!end || (size_t)(end - p - 1) >= cap) return 0;
  memcpy(out, p + 1, (size_t)(end - p - 1));
  out[end - p - 1] = 0;
  return 1;
}
static inline int hex_decode(const char *hex, uint8_t *out, size_t cap) {
  size_t n = strlen(hex) / 2;
  if (n > cap) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)n;
}

/* Takes a JSON result buffer as a NUL-terminated string (caller frees). */
static inline char *take_string(SpotsBuffer *buffer) {
  char *text = malloc(buffer->len + 1);
  memcpy(text, buffer->data ? (const char *)buffer->data : "", buffer->len);
  text[buffer->len] = 0;
  spots_buffer_free(buffer);
  return text;
}

/* The index-th object of the JSON array after `key` (objects have an "id"), or NULL. */
static inline const char *json_nth(const char *from, const char *key, int index) {
  const char *p = json_at(from, key);
  if (!p || p[1] != '{') return NULL;
  for (int i = 0; i < index; i++) {
    p = strstr(p + 1, "},{");
    if (!p) return NULL;
    p += 1;
  }
  return p;
}

/*
 * A bundle of a device as the key server hands it out, built from its publish plan: its
 * index-th remaining one-time EC and Kyber prekeys (or the last-resort Kyber key).
 */
static inline char *bundle_from_plan(const char *plan, int index) {
  static char ik[200], spub[200], ssig[200], kpub[4000], ksig[200], opub[200];
  const char *signed_pk = json_at(plan, "signed_pre_key");
  const char *one_time = json_nth(plan, "one_time_pre_keys", index);
  const char *kyber = json_nth(plan, "one_time_kyber_pre_keys", index);
  if (!kyber) kyber = json_at(plan, "last_resort_kyber_pre_key");
  json_str(plan, "identity_key", ik, sizeof ik);
  json_str(signed_pk, "public", spub, sizeof spub);
  json_str(signed_pk, "signature", ssig, sizeof ssig);
  json_str(kyber, "public", kpub, sizeof kpub);
  json_str(kyber, "signature", ksig, sizeof ksig);
  char pre_key[400] = "\"pre_key_id\":null,\"pre_key_public\":null";
  if (one_time) {
    json_str(one_time, "public", opub, sizeof opub);
    snprintf(pre_key, sizeof pre_key, "\"pre_key_id\":%lu,\"pre_key_public\":\"%s\"",
             json_uint(one_time, "id"), opub);
  }
  char *out = malloc(8192);
  snprintf(out, 8192,
           "{\"registration_id\":%lu,\"device_id\":%lu,\"identity_key\":\"%s\","
           "\"signed_pre_key_id\":%lu,\"signed_pre_key_public\":\"%s\","
           "\"signed_pre_key_signature\":\"%s\",%s,\"kyber_pre_key_id\":%lu,"
           "\"kyber_pre_key_public\":\"%s\",\"kyber_pre_key_signature\":\"%s\"}",
           json_uint(plan, "registration_id"), json_uint(plan, "device_id"), ik,
           json_uint(signed_pk, "id"), spub, ssig, pre_key, json_uint(kyber, "id"), kpub, ksig);
  return out;
}

static inline char *plan_of(SpotsTransport *device) {
  SpotsBuffer buf = {0};
  if (spots_publish_plan(device, &buf) != SPOTS_STATUS_OK) return NULL;
  return take_string(&buf);
}

/* A bundle with the device's first remaining one-time prekeys. */
static inline char *make_bundle(SpotsTransport *device) {
  char *plan = plan_of(device);
  if (!plan) return NULL;
  char *bundle = bundle_from_plan(plan, 0);
  free(plan);
  return bundle;
}

/* ---- devices ---- */

static inline SpotsTransport *open_device(const char *file, const uint8_t *key, const char *agent,
                                          uint32_t device) {
  SpotsTransport *handle = NULL;
  SpotsStatus st = spots_transport_open(path_in(file), key, 32, agent, device, &handle);
  CHECK(st == SPOTS_STATUS_OK && handle, "open %s -> %d", file, st);
  return handle;
}

static inline void ready(SpotsTransport *device) {
  SpotsBuffer buf = {0};
  OK(spots_ensure_ready(device, NOW, &buf));
  spots_buffer_free(&buf);
}

static inline int process(SpotsTransport *from, const char *to_agent, uint32_t to_device,
                          const char *bundle);

static inline int connect_to(SpotsTransport *from, SpotsTransport *to, const char *to_agent,
                             uint32_t to_device) {
  char *bundle = make_bundle(to);
  if (!bundle) return 0;
  int ok = process(from, to_agent, to_device, bundle);
  free(bundle);
  return ok;
}

static inline int process(SpotsTransport *from, const char *to_agent, uint32_t to_device,
                          const char *bundle) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_process_bundle(from, to_agent, to_device, (const uint8_t *)bundle,
                                        strlen(bundle), NOW, &out);
  CHECK(st == SPOTS_STATUS_OK, "process_bundle -> %d", st);
  spots_buffer_free(&out);
  return st == SPOTS_STATUS_OK;
}

typedef struct {
  uint8_t type;
  int len;
  uint8_t body[8192];
} Message;

/* Encrypts text to agent.device; returns 1 on success. */
static inline int encrypt_one(SpotsTransport *from, const char *agent, uint32_t device,
                              const char *text, Message *m) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_encrypt_to_agent(from, agent, device, (const uint8_t *)text,
                                          strlen(text), NOW, &out);
  if (st != SPOTS_STATUS_OK) return 0;
  char *json = take_string(&out);
  static __thread char hex[16400];
  m->type = (uint8_t)json_uint(json, "type");
  json_str(json, "body", hex, sizeof hex);
  m->len = hex_decode(hex, m->body, sizeof m->body);
  free(json);
  return m->len > 0;
}

/* Decrypts; returns the status and copies the plaintext into text. */
static inline SpotsStatus decrypt_one(SpotsTransport *to, const char *agent, uint32_t device,
                                      const Message *m, char *text, size_t cap, uint32_t *flags) {
  SpotsBuffer out = {0};
  uint32_t f = 0;
  SpotsStatus st =
      spots_decrypt_from_agent(to, agent, device, m->type, m->body, (size_t)m->len, NOW, &out, &f);
  if (st == SPOTS_STATUS_OK && text) {
    size_t n = out.len < cap - 1 ? out.len : cap - 1;
    memcpy(text, out.data, n);
    text[n] = 0;
  }
  if (flags) *flags = f;
  spots_buffer_free(&out);
  return st;
}

static inline void exchange(SpotsTransport *from, const char *from_agent, SpotsTransport *to,
                            const char *to_agent, const char *text) {
  Message m;
  char got[256];
  CHECK(encrypt_one(from, to_agent, 1, text, &m), "encrypt %s", text);
  EXPECT(decrypt_one(to, from_agent, 1, &m, got, sizeof got, NULL), SPOTS_STATUS_OK);
  CHECK(strcmp(got, text) == 0, "got %s, want %s", got, text);
}

static inline unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *data = malloc((size_t)n + 1);
  *len = fread(data, 1, (size_t)n, f);
  fclose(f);
  return data;
}

/* ---- running scenarios ---- */

typedef struct {
  const char *name;
  void (*run)(void);
} Scenario;

/* Runs every scenario, printing "ok - name" / "not ok - name" and the summary line. */
static inline int run_scenarios(const Scenario *scenarios, size_t count) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < count; i++) {
    scenario_failed = 0;
    scenarios[i].run();
    printf("%s - %s\n", scenario_failed ? "not ok" : "ok", scenarios[i].name);
    fflush(stdout);
    if (scenario_failed) failed++; else passed++;
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#endif
