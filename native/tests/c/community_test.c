/*
 * The community calls of the C ABI end to end: an admin and two members, each with its own
 * on-disk store, through an initial epoch shared over Signal, epoch-scheme and sender-chain
 * messages, restarts, a soft rotation and its grace window, seed repair through a DM,
 * refusals that leave the store file byte-identical, and one handle used from two threads.
 *
 *   community_test DIR    run every scenario in DIR (created, must be empty or absent)
 *
 * Scenarios run in order and carry on with the same store files. Prints "ok - name" /
 * "not ok - name" per scenario and ends with "N passed, M failed".
 */
#include "common.h"

static const char *const COMMUNITY = "c0c0c0c0-0000-4000-8000-000000000001";
static const uint64_t HOUR = 3600000ULL;
/* Epoch 2 (a soft rotation): starts one hour after NOW, epoch 1 accepted one more hour. */
#define ROTATED_AT (NOW + HOUR)
#define GRACE_UNTIL (NOW + 2 * HOUR)
static uint8_t KEY_C[32];

typedef struct {
  SpotsTransport *h;
  const char *agent;
  const char *file;
  const uint8_t *key;
} Dev;

static Dev dev_open(const char *agent, const char *file, const uint8_t *key) {
  Dev d = {open_device(file, key, agent, 1), agent, file, key};
  return d;
}

static void dev_close(Dev *d) {
  spots_transport_close(d->h);
  d->h = NULL;
}

/* An app restart: the handle is closed and the store opened again. */
static void dev_reopen(Dev *d) {
  dev_close(d);
  d->h = open_device(d->file, d->key, d->agent, 1);
}

static Dev admin_(void) { return dev_open("admin", "admin.db", KEY_A); }
static Dev bob_(void) { return dev_open("bob", "bob.db", KEY_B); }
static Dev carol_(void) { return dev_open("carol", "carol.db", KEY_C); }

/* ---- JSON arguments ---- */

/* `[{"agent_id": agents[i], "device_id": 1, "bundle": <bundle of with_bundle[i]> | null}]`. */
static char *recipients(int n, const char *const *agents, SpotsTransport *const *with_bundle) {
  size_t cap = 64;
  char **parts = calloc((size_t)n, sizeof *parts);
  for (int i = 0; i < n; i++) {
    char *bundle = with_bundle[i] ? make_bundle(with_bundle[i]) : NULL;
    size_t len = strlen(agents[i]) + (bundle ? strlen(bundle) : 4) + 64;
    parts[i] = malloc(len);
    snprintf(parts[i], len, "{\"agent_id\":\"%s\",\"device_id\":1,\"bundle\":%s}", agents[i],
             bundle ? bundle : "null");
    cap += strlen(parts[i]) + 1;
    free(bundle);
  }
  char *out = malloc(cap);
  strcpy(out, "[");
  for (int i = 0; i < n; i++) {
    if (i) strcat(out, ",");
    strcat(out, parts[i]);
    free(parts[i]);
  }
  strcat(out, "]");
  free(parts);
  return out;
}

static const char *EPOCH_1 =
    "{\"key_id\":1,\"rotated_at_ms\":1800000000000,\"rotation\":\"initial\"}";

/* The row of epoch 2 as the key server returns it. */
static const char *epoch_2(void) {
  static char row[200];
  snprintf(row, sizeof row,
           "{\"key_id\":2,\"rotated_at_ms\":%llu,\"rotation\":\"soft\",\"grace_until_ms\":%llu}",
           (unsigned long long)ROTATED_AT, (unsigned long long)GRACE_UNTIL);
  return row;
}

static SpotsStatus apply_epochs(Dev *d, const char *rows_json) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_community_apply_epochs(d->h, COMMUNITY, (const uint8_t *)rows_json,
                                                strlen(rows_json), &out);
  spots_buffer_free(&out);
  return st;
}

/* ---- JSON results ---- */

/* The index-th object of a flat JSON array of flat objects (share rows, actions), or NULL. */
static const char *json_item(const char *array, int index) {
  const char *p = array ? strchr(array, '{') : NULL;
  for (int i = 0; p && i < index; i++) {
    p = strstr(p, "},{");
    if (p) p += 2;
  }
  return p;
}

/* The share row among `rows` addressed to `agent`, or NULL. */
static const char *share_for(const char *rows, const char *agent) {
  for (int i = 0;; i++) {
    const char *row = json_item(rows, i);
    char to[64];
    if (!row) return NULL;
    if (json_str(row, "to_agent_id", to, sizeof to) && strcmp(to, agent) == 0) return row;
  }
}

static int count_items(const char *array) {
  int n = 0;
  while (json_item(array, n)) n++;
  return n;
}

/* Opens a share row as `community-keys/mine` returns it; `key_id` and `encryption_type`
 * override the row's when given (0 / NULL: the row's). The result JSON goes to *opened. */
static SpotsStatus open_share_as(Dev *d, const char *row, uint32_t key_id,
                                 const char *encryption_type, char **opened) {
  static __thread char from[64], community[64], kind[64], hex[40000];
  static __thread uint8_t body[20000];
  json_str(row, "from_agent_id", from, sizeof from);
  json_str(row, "community_id", community, sizeof community);
  json_str(row, "share_kind", kind, sizeof kind);
  json_str(row, "body", hex, sizeof hex);
  int len = hex_decode(hex, body, sizeof body);
  SpotsBuffer out = {0};
  SpotsStatus st = spots_community_open_share(
      d->h, from, (uint32_t)json_uint(row, "from_device_id"), community,
      key_id ? key_id : (uint32_t)json_uint(row, "key_id"),
      encryption_type ? encryption_type : "signal_protocol", kind,
      (uint8_t)json_uint(row, "message_type"), body, len > 0 ? (size_t)len : 0, NOW, &out);
  char *json = take_string(&out);
  if (opened) *opened = json; else free(json);
  return st;
}

/* Opens the share for `d` among `rows`; returns the result JSON (caller frees) or NULL. */
static char *open_mine(Dev *d, const char *rows) {
  const char *row = share_for(rows, d->agent);
  CHECK(row != NULL, "no share for %s in %.120s", d->agent, rows ? rows : "(null)");
  if (!row) return NULL;
  char *opened = NULL;
  SpotsStatus st = open_share_as(d, row, 0, NULL, &opened);
  CHECK(st == SPOTS_STATUS_OK, "%s opens its share -> %d", d->agent, st);
  return opened;
}

static char *observe(Dev *d, uint64_t now) {
  SpotsBuffer out = {0};
  OK(spots_community_observe(d->h, COMMUNITY, now, &out));
  return take_string(&out);
}

static char *state_of(Dev *d) {
  SpotsBuffer out = {0};
  OK(spots_community_state(d->h, COMMUNITY, &out));
  return take_string(&out);
}

/* Rotation (admin): the result JSON, or NULL on failure (status in *status when given). */
static char *rotate(Dev *d, uint32_t key_id, uint64_t rotated_at, const char *kind,
                    uint64_t grace_until, const char *recipients_json, uint64_t now) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_community_rotate(d->h, COMMUNITY, key_id, rotated_at, kind, grace_until,
                                          (const uint8_t *)recipients_json,
                                          strlen(recipients_json), now, &out);
  CHECK(st == SPOTS_STATUS_OK, "rotate to %u -> %d", key_id, st);
  return take_string(&out);
}

static char *share_chain(Dev *d, uint32_t key_id, const char *recipients_json, uint64_t now) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_community_share_sender_chain(
      d->h, COMMUNITY, key_id, (const uint8_t *)recipients_json, strlen(recipients_json), now,
      &out);
  CHECK(st == SPOTS_STATUS_OK, "%s shares its chain -> %d", d->agent, st);
  return take_string(&out);
}

typedef struct {
  uint8_t data[8192];
  size_t len;
  uint32_t key_id;
} Blob;

static SpotsStatus encrypt_blob(Dev *d, const char *text, uint64_t now, Blob *b) {
  SpotsBuffer out = {0};
  SpotsStatus st = spots_community_encrypt(d->h, COMMUNITY, (const uint8_t *)text, strlen(text),
                                           now, &out, &b->key_id);
  b->len = out.len < sizeof b->data ? out.len : 0;
  if (b->len) memcpy(b->data, out.data, b->len);
  spots_buffer_free(&out);
  return st;
}

/* Decrypts; copies the plaintext into text and returns the info JSON in *info. */
static SpotsStatus decrypt_blob(Dev *d, const char *from, const Blob *b, uint64_t now,
                                char *text, size_t cap, char **info) {
  SpotsBuffer plaintext = {0}, out = {0};
  SpotsStatus st = spots_community_decrypt(d->h, COMMUNITY, from, 1, b->data, b->len, now,
                                           &plaintext, &out);
  if (text) {
    size_t n = plaintext.len < cap - 1 ? plaintext.len : cap - 1;
    if (n) memcpy(text, plaintext.data, n);
    text[n] = 0;
  }
  spots_buffer_free(&plaintext);
  char *json = take_string(&out);
  if (info) *info = json; else free(json);
  return st;
}

/* Decrypts and checks the text and, when given, the scheme; returns 1 on success. */
static int receive(Dev *d, const char *from, const Blob *b, const char *want, uint64_t now,
                   const char *scheme) {
  char got[256], *info = NULL, kind[32] = "", got_scheme[32] = "";
  SpotsStatus st = decrypt_blob(d, from, b, now, got, sizeof got, &info);
  json_str(info, "kind", kind, sizeof kind);
  json_str(info, "scheme", got_scheme, sizeof got_scheme);
  int ok = st == SPOTS_STATUS_OK && strcmp(kind, "message") == 0 && strcmp(got, want) == 0 &&
           (!scheme || strcmp(got_scheme, scheme) == 0);
  CHECK(ok, "%s reads \"%s\" from %s -> %d %s (%s)", d->agent, want, from, st, got, info);
  free(info);
  return ok;
}

/* A DM of raw bytes to agent.1 and its decryption on the other side. */
static int dm_bytes(Dev *from, Dev *to, const uint8_t *bytes, size_t len, uint8_t *got,
                    size_t *got_len) {
  SpotsBuffer out = {0};
  if (spots_encrypt_to_agent(from->h, to->agent, 1, bytes, len, NOW, &out) != SPOTS_STATUS_OK)
    return 0;
  char *json = take_string(&out);
  Message m;
  static __thread char hex[16400];
  m.type = (uint8_t)json_uint(json, "type");
  json_str(json, "body", hex, sizeof hex);
  m.len = hex_decode(hex, m.body, sizeof m.body);
  free(json);
  SpotsBuffer plaintext = {0};
  uint32_t flags = 0;
  SpotsStatus st = spots_decrypt_from_agent(to->h, from->agent, 1, m.type, m.body,
                                            (size_t)m.len, NOW, &plaintext, &flags);
  *got_len = plaintext.len;
  if (plaintext.len) memcpy(got, plaintext.data, plaintext.len);
  spots_buffer_free(&plaintext);
  return st == SPOTS_STATUS_OK;
}

/* The store file and its write-ahead log, concatenated (to compare before/after a call). */
static unsigned char *store_bytes(const char *file, size_t *len) {
  size_t db_len = 0, wal_len = 0;
  char wal[64];
  snprintf(wal, sizeof wal, "%s-wal", file);
  unsigned char *db = read_file(path_in(file), &db_len);
  unsigned char *log = read_file(path_in(wal), &wal_len);
  unsigned char *all = malloc(db_len + wal_len + 1);
  if (db) memcpy(all, db, db_len);
  if (log) memcpy(all + db_len, log, wal_len);
  free(db);
  free(log);
  *len = db_len + wal_len;
  return all;
}

static int same_bytes(const unsigned char *a, size_t a_len, const unsigned char *b, size_t b_len) {
  return a_len == b_len && memcmp(a, b, a_len) == 0;
}

/* ---- scenarios ---- */

static void scenario_initial_epoch(void) {
  Dev admin = admin_(), bob = bob_(), carol = carol_();
  ready(admin.h);
  ready(bob.h);
  ready(carol.h);
  char *state = state_of(&bob);
  CHECK(strcmp(state, "null") == 0, "no community state yet: %s", state);
  free(state);

  /* The admin starts the community's first epoch from the key server's row and seals its
   * key for both members, processing their bundles (first contact: PreKey messages). */
  const char *members[] = {"bob", "carol"};
  SpotsTransport *bundles[] = {bob.h, carol.h};
  char *to = recipients(2, members, bundles);
  char *rotation = rotate(&admin, 1, NOW, "initial", 0, to, NOW);
  free(to);
  CHECK(strstr(rotation, "\"epoch_id\":\"cbbe61b0-99e2-82db-968f-bc3f3535d6ec\"") &&
            strstr(rotation, "\"rotation\":\"hard\""),
        "epoch: %.300s", rotation);
  const char *shares = json_at(rotation, "shares");
  CHECK(count_items(shares) == 2, "two shares");
  CHECK(strstr(shares, "\"message_type\":3") && !strstr(shares, "\"message_type\":2") &&
            strstr(shares, "\"share_kind\":\"epoch_key_v1\"") &&
            strstr(shares, "\"encryption_type\":\"signal_protocol\""),
        "shares are PreKey messages");

  Dev *readers[] = {&bob, &carol};
  for (int i = 0; i < 2; i++) {
    Dev *m = readers[i];
    char rows[200];
    snprintf(rows, sizeof rows, "[%s]", EPOCH_1);
    OK(apply_epochs(m, rows));
    char *actions = observe(m, NOW);
    CHECK(strcmp(actions, "[{\"action\":\"fetch_my_share\",\"key_id\":1}]") == 0, "%s", actions);
    free(actions);
    char *opened = open_mine(m, shares);
    CHECK(opened && strstr(opened, "\"first_for_community\":true") &&
              strstr(opened, "\"from_agent_id\":\"admin\""),
          "opened: %s", opened);
    free(opened);
    actions = observe(m, NOW);
    CHECK(strcmp(actions, "[{\"action\":\"start_using_epoch\",\"key_id\":1}]") == 0, "%s",
          actions);
    free(actions);
    OK(spots_community_start_using(m->h, COMMUNITY, 1));
  }
  free(rotation);

  /* The epoch scheme, both ways. */
  Blob b;
  OK(encrypt_blob(&bob, "hello from bob", NOW + 1, &b));
  CHECK(b.len && b.data[0] == 1 && b.key_id == 1, "version-1 blob of epoch 1");
  receive(&admin, "bob", &b, "hello from bob", NOW + 2, "epoch");
  receive(&carol, "bob", &b, "hello from bob", NOW + 2, "epoch");
  OK(encrypt_blob(&admin, "welcome", NOW + 3, &b));
  receive(&bob, "admin", &b, "welcome", NOW + 4, "epoch");
  receive(&carol, "admin", &b, "welcome", NOW + 4, "epoch");

  /* Everyone restarts with a message in flight. */
  Blob in_flight;
  OK(encrypt_blob(&carol, "across the restart", NOW + 5, &in_flight));
  dev_reopen(&admin);
  dev_reopen(&bob);
  dev_reopen(&carol);
  receive(&admin, "carol", &in_flight, "across the restart", NOW + 6, "epoch");
  receive(&bob, "carol", &in_flight, "across the restart", NOW + 6, "epoch");
  OK(encrypt_blob(&bob, "after the restart", NOW + 7, &b));
  receive(&carol, "bob", &b, "after the restart", NOW + 8, "epoch");
  dev_close(&admin);
  dev_close(&bob);
  dev_close(&carol);
}

static void scenario_sender_chains_and_soft_rotation(void) {
  Dev admin = admin_(), bob = bob_(), carol = carol_();
  /* Each device shares its chain for epoch 1 with the two others; bob and carol have no
   * session yet, so each other's bundle goes along. */
  const char *to_admin_members[] = {"bob", "carol"};
  SpotsTransport *none[] = {NULL, NULL};
  char *to = recipients(2, to_admin_members, none);
  char *from_admin = share_chain(&admin, 1, to, NOW + 10);
  free(to);
  const char *to_bob_peers[] = {"admin", "carol"};
  SpotsTransport *carol_bundle[] = {NULL, carol.h};
  to = recipients(2, to_bob_peers, carol_bundle);
  char *from_bob = share_chain(&bob, 1, to, NOW + 10);
  free(to);
  const char *to_carol_peers[] = {"admin", "bob"};
  SpotsTransport *bob_bundle[] = {NULL, bob.h};
  to = recipients(2, to_carol_peers, bob_bundle);
  char *from_carol = share_chain(&carol, 1, to, NOW + 10);
  free(to);
  CHECK(strstr(from_admin, "\"share_kind\":\"epoch_sender_chain_seed_v1\"") != NULL, "kind");
  free(open_mine(&bob, from_admin));
  free(open_mine(&carol, from_admin));
  free(open_mine(&admin, from_bob));
  free(open_mine(&carol, from_bob));
  free(open_mine(&admin, from_carol));
  /* A restart with one seed still unopened. */
  dev_reopen(&bob);
  free(open_mine(&bob, from_carol));
  free(from_admin), free(from_bob), free(from_carol);

  Blob b;
  OK(encrypt_blob(&admin, "a sender-chain message", NOW + 20, &b));
  CHECK(b.len && b.data[0] == 2 && b.key_id == 1, "version-2 blob of epoch 1");
  receive(&bob, "admin", &b, "a sender-chain message", NOW + 21, "sender_chain");
  receive(&carol, "admin", &b, "a sender-chain message", NOW + 21, "sender_chain");
  EXPECT(decrypt_blob(&bob, "admin", &b, NOW + 22, NULL, 0, NULL),
         SPOTS_STATUS_DUPLICATE_MESSAGE);
  OK(encrypt_blob(&carol, "a chain reply", NOW + 23, &b));
  receive(&admin, "carol", &b, "a chain reply", NOW + 24, "sender_chain");
  receive(&bob, "carol", &b, "a chain reply", NOW + 24, "sender_chain");

  /* A soft rotation to epoch 2 with a one-hour grace window. */
  to = recipients(2, to_admin_members, none);
  char *rotation = rotate(&admin, 2, ROTATED_AT, "soft", GRACE_UNTIL, to, ROTATED_AT);
  free(to);
  const char *shares = json_at(rotation, "shares");
  char rows[400];
  snprintf(rows, sizeof rows, "[%s,%s]", EPOCH_1, epoch_2());
  OK(apply_epochs(&bob, rows));
  char *actions = observe(&bob, ROTATED_AT + 1);
  CHECK(strcmp(actions, "[{\"action\":\"fetch_my_share\",\"key_id\":2}]") == 0, "%s", actions);
  free(actions);
  free(open_mine(&bob, shares));
  OK(spots_community_start_using(bob.h, COMMUNITY, 2));
  Blob in_2;
  OK(encrypt_blob(&bob, "in epoch 2", ROTATED_AT + 2, &in_2));
  CHECK(in_2.key_id == 2 && in_2.data[0] == 1, "epoch 2, epoch scheme (no chains there yet)");
  receive(&admin, "bob", &in_2, "in epoch 2", ROTATED_AT + 3, "epoch");

  /* Carol has not seen epoch 2 yet: inside the grace window her epoch-1 messages are read. */
  OK(encrypt_blob(&carol, "still in epoch 1", ROTATED_AT + 10, &b));
  CHECK(b.key_id == 1, "epoch 1");
  receive(&admin, "carol", &b, "still in epoch 1", ROTATED_AT + 11, "sender_chain");
  receive(&bob, "carol", &b, "still in epoch 1", ROTATED_AT + 11, "sender_chain");
  /* Stamped after the window: refused, and the admin's store is left byte for byte. */
  OK(encrypt_blob(&carol, "too late", GRACE_UNTIL + 1, &b));
  size_t before_len, after_len;
  unsigned char *before = store_bytes("admin.db", &before_len);
  EXPECT(decrypt_blob(&admin, "carol", &b, GRACE_UNTIL + 2, NULL, 0, NULL),
         SPOTS_STATUS_EPOCH_REJECTED);
  unsigned char *after = store_bytes("admin.db", &after_len);
  CHECK(same_bytes(before, before_len, after, after_len), "store unchanged by the refusal");
  free(before), free(after);

  /* Carol catches up after a restart. */
  dev_reopen(&carol);
  snprintf(rows, sizeof rows, "[%s]", epoch_2());
  OK(apply_epochs(&carol, rows));
  EXPECT(decrypt_blob(&carol, "bob", &in_2, ROTATED_AT + 12, NULL, 0, NULL),
         SPOTS_STATUS_NO_SENDER_KEY_STATE);
  free(open_mine(&carol, shares));
  receive(&carol, "bob", &in_2, "in epoch 2", ROTATED_AT + 13, "epoch");
  OK(spots_community_start_using(carol.h, COMMUNITY, 2));
  OK(encrypt_blob(&carol, "carol in epoch 2", GRACE_UNTIL + 3, &b));
  CHECK(b.key_id == 2, "epoch 2");
  receive(&bob, "carol", &b, "carol in epoch 2", GRACE_UNTIL + 4, "epoch");
  receive(&admin, "carol", &b, "carol in epoch 2", GRACE_UNTIL + 4, "epoch");
  char *state = state_of(&carol);
  CHECK(strstr(state, "\"sending_key_id\":2") != NULL, "%s", state);
  free(state);
  free(rotation);
  dev_close(&admin);
  dev_close(&bob);
  dev_close(&carol);
}

static void scenario_repair(void) {
  Dev admin = admin_(), bob = bob_(), carol = carol_();
  uint64_t now = GRACE_UNTIL + 10;
  /* The admin's chain for epoch 2 reaches bob; carol's copy is lost. */
  const char *only_bob[] = {"bob"};
  SpotsTransport *none[] = {NULL};
  char *to = recipients(1, only_bob, none);
  char *seeds = share_chain(&admin, 2, to, now);
  free(to);
  free(open_mine(&bob, seeds));
  free(seeds);
  Blob first;
  OK(encrypt_blob(&admin, "first", now + 1, &first));
  CHECK(first.data[0] == 2 && first.key_id == 2, "sender chain in epoch 2");
  receive(&bob, "admin", &first, "first", now + 2, "sender_chain");

  char *info = NULL;
  char text[64] = "x";
  OK(decrypt_blob(&carol, "admin", &first, now + 2, text, sizeof text, &info));
  char kind[32] = "", agent[32] = "", hex[1024] = "";
  json_str(info, "kind", kind, sizeof kind);
  json_str(info, "agent_id", agent, sizeof agent);
  json_str(info, "request", hex, sizeof hex);
  CHECK(strcmp(kind, "missing_seed") == 0 && strcmp(agent, "admin") == 0 && text[0] == 0,
        "missing seed: %s", info);
  free(info);
  uint8_t request[512];
  int request_len = hex_decode(hex, request, sizeof request);
  CHECK(request_len > 0, "request bytes");
  char *state = state_of(&carol);
  CHECK(strstr(state, "\"pending_repairs\":[{") != NULL, "repair recorded: %s", state);
  free(state);
  /* The restart keeps the repair; an hour later observe asks again. */
  dev_reopen(&carol);
  char *actions = observe(&carol, now + 2 * HOUR);
  CHECK(strstr(actions, "\"action\":\"request_repair\"") && strstr(actions, "\"key_id\":2"),
        "%s", actions);
  free(actions);

  /* The request travels as a DM; the admin answers with a re-share. */
  uint8_t got[512];
  size_t got_len = 0;
  CHECK(dm_bytes(&carol, &admin, request, (size_t)request_len, got, &got_len) &&
            got_len == (size_t)request_len && memcmp(got, request, got_len) == 0,
        "request DM");
  SpotsBuffer out = {0};
  OK(spots_community_answer_sender_key_request(admin.h, "carol", 1, got, got_len, now + 3, &out));
  char *answer = take_string(&out);
  CHECK(strstr(answer, "\"share_kind\":\"re_share_v1\"") &&
            strstr(answer, "\"to_agent_id\":\"carol\"") && strstr(answer, "\"key_id\":2"),
        "answer: %s", answer);
  char *opened = NULL;
  OK(open_share_as(&carol, answer, 0, NULL, &opened));
  free(opened);
  free(answer);
  state = state_of(&carol);
  CHECK(strstr(state, "\"pending_repairs\":[]") != NULL, "repair resolved: %s", state);
  free(state);
  /* Forward secrecy: the message before the re-shared iteration stays unreadable. */
  EXPECT(decrypt_blob(&carol, "admin", &first, now + 4, NULL, 0, NULL),
         SPOTS_STATUS_DUPLICATE_MESSAGE);
  Blob second;
  OK(encrypt_blob(&admin, "second", now + 5, &second));
  receive(&carol, "admin", &second, "second", now + 6, "sender_chain");
  receive(&bob, "admin", &second, "second", now + 6, "sender_chain");
  dev_close(&admin);
  dev_close(&bob);
  dev_close(&carol);
}

static void scenario_refusals_leave_the_file(void) {
  Dev admin = admin_(), bob = bob_();
  uint64_t now = GRACE_UNTIL + 100;
  /* A fresh copy of the admin's chain for bob: refused first in several ways, then opened. */
  const char *only_bob[] = {"bob"};
  SpotsTransport *none[] = {NULL};
  char *to = recipients(1, only_bob, none);
  char *seeds = share_chain(&admin, 2, to, now);
  free(to);
  const char *row = share_for(seeds, "bob");
  Blob b;
  OK(encrypt_blob(&admin, "genuine", now + 1, &b));
  Blob tampered = b;
  tampered.data[tampered.len - 1] ^= 1;

  size_t before_len, after_len;
  unsigned char *before = store_bytes("bob.db", &before_len);
  EXPECT(open_share_as(&bob, row, 0, "plaintext", NULL), SPOTS_STATUS_INVALID_MESSAGE);
  EXPECT(open_share_as(&bob, row, 1, NULL, NULL), SPOTS_STATUS_INVALID_MESSAGE);
  EXPECT(decrypt_blob(&bob, "admin", &tampered, now + 2, NULL, 0, NULL),
         SPOTS_STATUS_INVALID_SIGNATURE);
  EXPECT(decrypt_blob(&bob, "carol", &b, now + 2, NULL, 0, NULL), SPOTS_STATUS_INVALID_MESSAGE);
  Blob cut = b;
  cut.len = 30;
  EXPECT(decrypt_blob(&bob, "admin", &cut, now + 2, NULL, 0, NULL), SPOTS_STATUS_INVALID_MESSAGE);
  EXPECT(apply_epochs(&bob, "[{\"key_id\":1,\"rotated_at_ms\":5,\"rotation\":\"initial\"}]"),
         SPOTS_STATUS_INVALID_STATE);
  unsigned char *after = store_bytes("bob.db", &after_len);
  CHECK(same_bytes(before, before_len, after, after_len), "the store file is unchanged");
  free(before), free(after);

  /* The refused share was not consumed: it opens now, and the genuine blob decrypts. */
  char *opened = NULL;
  OK(open_share_as(&bob, row, 0, NULL, &opened));
  free(opened);
  free(seeds);
  receive(&bob, "admin", &b, "genuine", now + 3, "sender_chain");
  dev_close(&admin);
  dev_close(&bob);
}

typedef struct {
  SpotsTransport *handle;
  const char *peer;
  int id, count, errors;
  Blob *blobs;
} Worker;

static void *encrypt_worker(void *arg) {
  Worker *w = arg;
  for (int i = 0; i < w->count; i++) {
    char text[64];
    snprintf(text, sizeof text, "thread %d message %d", w->id, i);
    Dev d = {w->handle, "admin", NULL, NULL};
    if (encrypt_blob(&d, text, GRACE_UNTIL + 200, &w->blobs[i]) != SPOTS_STATUS_OK) w->errors++;
    /* A read-only call in between, and a failure that sets only this thread's last error. */
    SpotsBuffer out = {0};
    if (spots_community_observe(w->handle, COMMUNITY, GRACE_UNTIL + 200, &out) !=
        SPOTS_STATUS_OK)
      w->errors++;
    spots_buffer_free(&out);
    if (spots_community_start_using(w->handle, COMMUNITY, 0) != SPOTS_STATUS_INVALID_ARGUMENT ||
        !spots_last_error_message())
      w->errors++;
  }
  return NULL;
}

static void *decrypt_worker(void *arg) {
  Worker *w = arg;
  for (int i = 0; i < w->count; i++) {
    char want[64], got[64];
    snprintf(want, sizeof want, "thread %d message %d", w->id, i);
    Dev d = {w->handle, "bob", NULL, NULL};
    if (decrypt_blob(&d, w->peer, &w->blobs[i], GRACE_UNTIL + 201, got, sizeof got, NULL) !=
            SPOTS_STATUS_OK ||
        strcmp(got, want) != 0)
      w->errors++;
  }
  return NULL;
}

static void scenario_two_threads(void) {
  enum { N = 25 };
  static Blob blobs[2][N];
  Dev admin = admin_(), bob = bob_();
  Worker workers[2];
  pthread_t threads[2];
  for (int t = 0; t < 2; t++) {
    workers[t] = (Worker){admin.h, "admin", t, N, 0, blobs[t]};
    pthread_create(&threads[t], NULL, encrypt_worker, &workers[t]);
  }
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
  CHECK(workers[0].errors == 0 && workers[1].errors == 0, "encrypt errors %d %d",
        workers[0].errors, workers[1].errors);
  /* Bob reads both streams at once on his one handle: iterations arrive out of order. */
  for (int t = 0; t < 2; t++) {
    workers[t] = (Worker){bob.h, "admin", t, N, 0, blobs[t]};
    pthread_create(&threads[t], NULL, decrypt_worker, &workers[t]);
  }
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
  CHECK(workers[0].errors == 0 && workers[1].errors == 0, "decrypt errors %d %d",
        workers[0].errors, workers[1].errors);
  dev_close(&admin);
  dev_close(&bob);
}

static void scenario_abi_edges(void) {
  Dev bob = bob_();
  SpotsBuffer out = {0};
  EXPECT(spots_community_state(NULL, COMMUNITY, &out), SPOTS_STATUS_NULL_POINTER);
  EXPECT(spots_community_state(bob.h, NULL, &out), SPOTS_STATUS_NULL_POINTER);
  EXPECT(spots_community_state(bob.h, COMMUNITY, NULL), SPOTS_STATUS_NULL_POINTER);
  EXPECT(spots_community_state(bob.h, "not-a-uuid", &out), SPOTS_STATUS_INVALID_ARGUMENT);
  CHECK(strstr(spots_last_error_message(), "community_id"), "message names the argument");
  const char bad_utf8[] = {(char)0xff, 0};
  EXPECT(spots_community_state(bob.h, bad_utf8, &out), SPOTS_STATUS_INVALID_UTF8);
  const char *other = "c0c0c0c0-0000-4000-8000-0000000000ff";
  OK(spots_community_state(bob.h, other, &out));
  char *state = take_string(&out);
  CHECK(strcmp(state, "null") == 0, "%s", state);
  free(state);
  EXPECT(spots_community_observe(bob.h, other, NOW, &out), SPOTS_STATUS_NO_SENDER_KEY_STATE);
  CHECK(strstr(spots_last_error_json(), "\"status\":35"), "%s", spots_last_error_json());
  uint32_t key_id = 9;
  EXPECT(spots_community_encrypt(bob.h, other, (const uint8_t *)"x", 1, NOW, &out, &key_id),
         SPOTS_STATUS_NO_SENDER_KEY_STATE);
  CHECK(key_id == 0 && out.len == 0, "outputs reset on failure");
  EXPECT(spots_community_start_using(bob.h, COMMUNITY, 0), SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_community_start_using(bob.h, COMMUNITY, 7), SPOTS_STATUS_NO_SENDER_KEY_STATE);
  const char *junk = "[{\"key_id\":1}]";
  EXPECT(spots_community_apply_epochs(bob.h, COMMUNITY, (const uint8_t *)junk, strlen(junk),
                                      &out),
         SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_community_rotate(bob.h, other, 1, NOW, "sideways", 0, (const uint8_t *)"[]", 2,
                                NOW, &out),
         SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_community_answer_sender_key_request(bob.h, "admin", 1, (const uint8_t *)"junk",
                                                   4, NOW, &out),
         SPOTS_STATUS_INVALID_MESSAGE);
  spots_buffer_free(&out);
  dev_close(&bob);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: community_test DIR\n");
    return 2;
  }
  snprintf(DIR_, sizeof DIR_, "%s", argv[1]);
  mkdir(DIR_, 0700);
  memset(KEY_A, 0xA1, sizeof KEY_A);
  memset(KEY_B, 0xB2, sizeof KEY_B);
  memset(KEY_C, 0xC3, sizeof KEY_C);
  static const Scenario scenarios[] = {
      {"admin + two members on disk: initial epoch shared over Signal (bundles processed), "
       "epoch-scheme messages both ways, restart with a message in flight",
       scenario_initial_epoch},
      {"sender-chain seeds over Signal and sender-chain messages; soft rotation to epoch 2, "
       "epoch 1 read inside the grace window and refused after it",
       scenario_sender_chains_and_soft_rotation},
      {"seed repair: missing seed -> request DM -> re-share, across a restart",
       scenario_repair},
      {"refused shares, blobs and epoch rows leave the store file byte-identical",
       scenario_refusals_leave_the_file},
      {"community calls on one handle from two threads at once", scenario_two_threads},
      {"ABI edges: NULLs, bad ids and UTF-8, unknown community, bad JSON, last error",
       scenario_abi_edges},
  };
  return run_scenarios(scenarios, sizeof scenarios / sizeof *scenarios);
}
