/*
 * The C ABI end to end: two devices with separate on-disk stores hold a DM, restart, meet a
 * wrong key and a damaged file, get killed between steps, and share a handle between threads.
 *
 *   dm_test DIR           run every scenario in DIR (created, must be empty or absent)
 *   dm_test --party ...   one step of a conversation held through files (used by the
 *                         cross-architecture check, see native/scripts/cross.sh)
 *
 * Prints "ok - name" / "not ok - name" per scenario and ends with "N passed, M failed".
 */
#include "common.h"

/* ---- scenarios ---- */

static void scenario_first_contact(void) {
  SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
  SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
  SpotsBuffer buf = {0};
  OK(spots_ensure_ready(bob, NOW, &buf));
  char *report = take_string(&buf);
  CHECK(strstr(report, "\"needs_upload\":true") && strstr(report, "\"identity_created\":true"),
        "first ensure_ready: %.80s", report);
  free(report);
  OK(spots_ensure_ready(bob, NOW, &buf));
  report = take_string(&buf);
  CHECK(strstr(report, "\"needs_upload\":false"), "second ensure_ready needs no upload");
  free(report);
  ready(alice);

  /* Without a session nothing is encrypted; the error names what to fetch. */
  OK(spots_devices(alice, "bob", &buf));
  char *devices = take_string(&buf);
  CHECK(strcmp(devices, "[]") == 0, "devices %s", devices);
  free(devices);
  Message m;
  CHECK(!encrypt_one(alice, "bob", 0, "x", &m), "encrypt without session");
  CHECK(spots_last_error_json() && strstr(spots_last_error_json(), "\"status\":34") &&
            strstr(spots_last_error_json(), "\"unknown_agents\":[\"bob\"]"),
        "missing sessions details: %s", spots_last_error_json());

  CHECK(connect_to(alice, bob, "bob", 1), "connect");
  CHECK(encrypt_one(alice, "bob", 0, "hello bob", &m), "encrypt");
  CHECK(m.type == 3, "first message type %d", m.type);
  char got[256];
  uint32_t flags = 0;
  EXPECT(decrypt_one(bob, "alice", 1, &m, got, sizeof got, &flags), SPOTS_STATUS_OK);
  CHECK(strcmp(got, "hello bob") == 0 && (flags & SPOTS_DECRYPT_NEW_SESSION), "got %s", got);
  /* The same PreKey message again: a duplicate, state unchanged. */
  EXPECT(decrypt_one(bob, "alice", 1, &m, got, sizeof got, NULL),
         SPOTS_STATUS_DUPLICATE_MESSAGE);
  exchange(bob, "bob", alice, "alice", "hi alice");
  exchange(alice, "alice", bob, "bob", "how are you");

  /* Safety numbers agree on both sides, and the QR payloads match. */
  OK(spots_safety_number(alice, "bob", 1, &buf));
  char *sa = take_string(&buf);
  OK(spots_safety_number(bob, "alice", 1, &buf));
  char *sb = take_string(&buf);
  char da[80], db[80], qr[400];
  json_str(sa, "displayable", da, sizeof da);
  json_str(sb, "displayable", db, sizeof db);
  CHECK(strlen(da) == 60 && strcmp(da, db) == 0, "safety numbers %s / %s", da, db);
  json_str(sb, "scannable", qr, sizeof qr);
  uint8_t scanned[200];
  int n = hex_decode(qr, scanned, sizeof scanned);
  bool matches = false;
  OK(spots_compare_safety_number(alice, "bob", 1, scanned, (size_t)n, &matches));
  CHECK(matches, "scanned safety number matches");
  OK(spots_mark_verified(alice, "bob", 1));
  OK(spots_trust(alice, "bob", 1, &buf));
  char *trust = take_string(&buf);
  CHECK(strstr(trust, "\"state\":\"trusted\"") && strstr(trust, "\"verified\":true"), "%s", trust);
  free(sa), free(sb), free(trust);
  spots_transport_close(alice);
  spots_transport_close(bob);
}

/* Bob reinstalls (a new identity key): alice still decrypts him and sees the change, but cannot
 * send until she approves exactly the key she was shown; approval clears "verified". */
static void scenario_identity_change(void) {
  SpotsTransport *alice = open_device("ic-alice.db", KEY_A, "alice", 1);
  SpotsTransport *bob = open_device("ic-bob.db", KEY_B, "bob", 1);
  ready(alice);
  ready(bob);
  CHECK(connect_to(alice, bob, "bob", 1), "connect");
  exchange(alice, "alice", bob, "bob", "before");
  exchange(bob, "bob", alice, "alice", "ack");
  OK(spots_mark_verified(alice, "bob", 1));
  spots_transport_close(bob);

  SpotsTransport *bob2 = open_device("ic-bob2.db", KEY_B, "bob", 1);
  ready(bob2);
  ready(bob2);
  CHECK(connect_to(bob2, alice, "alice", 1), "bob2 connects");
  Message m;
  CHECK(encrypt_one(bob2, "alice", 1, "new phone", &m), "bob2 encrypts");
  char got[256];
  uint32_t flags = 0;
  EXPECT(decrypt_one(alice, "bob", 1, &m, got, sizeof got, &flags), SPOTS_STATUS_OK);
  CHECK(strcmp(got, "new phone") == 0 && (flags & SPOTS_DECRYPT_IDENTITY_CHANGED),
        "changed identity reported (flags %u)", flags);
  CHECK(!encrypt_one(alice, "bob", 1, "blocked", &m), "encrypt refused before approval");
  CHECK(spots_last_error_json() && strstr(spots_last_error_json(), "\"status\":30"),
        "untrusted identity: %s", spots_last_error_json());

  SpotsBuffer buf = {0};
  OK(spots_trust(alice, "bob", 1, &buf));
  char *trust = take_string(&buf);
  char shown_hex[80], previous_hex[80];
  CHECK(strstr(trust, "\"state\":\"changed\"") &&
            json_str(trust, "identity_key", shown_hex, sizeof shown_hex) &&
            json_str(trust, "previous_identity_key", previous_hex, sizeof previous_hex),
        "trust %s", trust);
  uint8_t shown[33], previous[33];
  CHECK(hex_decode(shown_hex, shown, sizeof shown) == 33, "shown key");
  CHECK(hex_decode(previous_hex, previous, sizeof previous) == 33, "previous key");
  /* Approving any other key (here the old one) is refused and changes nothing. */
  EXPECT(spots_approve_identity(alice, "bob", 1, previous, sizeof previous),
         SPOTS_STATUS_UNTRUSTED_IDENTITY);
  CHECK(!encrypt_one(alice, "bob", 1, "still blocked", &m), "still refused");
  OK(spots_approve_identity(alice, "bob", 1, shown, sizeof shown));
  free(trust);
  OK(spots_trust(alice, "bob", 1, &buf));
  trust = take_string(&buf);
  CHECK(strstr(trust, "\"state\":\"trusted\"") && strstr(trust, "\"verified\":false"),
        "approved, verification cleared: %s", trust);
  free(trust);
  exchange(alice, "alice", bob2, "bob", "welcome back");
  spots_transport_close(alice);
  spots_transport_close(bob2);
}

/* Each step runs in its own process, as an app that is restarted between messages. */
static void scenario_restart(void) {
  for (int round = 0; round < 3; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      scenario_failed = 0;
      SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
      SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
      char text[64];
      snprintf(text, sizeof text, "after restart %d", round);
      exchange(alice, "alice", bob, "bob", text);
      /* Leave a message in flight across the restart. */
      Message m;
      CHECK(encrypt_one(bob, "alice", 1, "in flight", &m), "encrypt in flight");
      FILE *f = fopen(path_in("inflight.bin"), "wb");
      fwrite(&m, sizeof m, 1, f);
      fclose(f);
      spots_transport_close(alice);
      spots_transport_close(bob);
      _exit(scenario_failed);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child round %d", round);
    SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
    size_t len = 0;
    Message *m = (Message *)read_file(path_in("inflight.bin"), &len);
    char got[64];
    CHECK(m && len == sizeof *m, "in-flight message");
    if (m) {
      EXPECT(decrypt_one(alice, "bob", 1, m, got, sizeof got, NULL), SPOTS_STATUS_OK);
      CHECK(strcmp(got, "in flight") == 0, "in flight: %s", got);
    }
    free(m);
    spots_transport_close(alice);
  }
}

static void scenario_wrong_key_and_damage(void) {
  size_t before_len = 0, after_len = 0;
  unsigned char *before = read_file(path_in("alice.db"), &before_len);
  uint8_t wrong[32];
  memset(wrong, 0x77, sizeof wrong);
  SpotsTransport *handle = (SpotsTransport *)0x1;
  EXPECT(spots_transport_open(path_in("alice.db"), wrong, 32, "alice", 1, &handle),
         SPOTS_STATUS_STORE_WRONG_KEY);
  CHECK(handle == NULL, "no handle on a wrong key");
  CHECK(spots_last_error_message() != NULL, "a message");
  EXPECT(spots_transport_open(path_in("alice.db"), KEY_A, 32, "alice", 2, &handle),
         SPOTS_STATUS_STORE_ADDRESS_MISMATCH);
  EXPECT(spots_transport_open(path_in("alice.db"), KEY_A, 16, "alice", 1, &handle),
         SPOTS_STATUS_INVALID_ARGUMENT);
  unsigned char *after = read_file(path_in("alice.db"), &after_len);
  CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0,
        "the store file is unchanged");
  free(before), free(after);

  /* A damaged file is refused and left as it was. */
  FILE *f = fopen(path_in("junk.db"), "wb");
  for (int i = 0; i < 4096; i++) fputc(0xA5, f);
  fclose(f);
  EXPECT(spots_transport_open(path_in("junk.db"), KEY_A, 32, "alice", 1, &handle),
         SPOTS_STATUS_STORE_CORRUPT);
  unsigned char *junk = read_file(path_in("junk.db"), &after_len);
  CHECK(after_len == 4096 && junk[0] == 0xA5 && junk[4095] == 0xA5, "junk file untouched");
  free(junk);

  /* With the right key the conversation goes on. */
  SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
  SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
  exchange(alice, "alice", bob, "bob", "still here");
  exchange(bob, "bob", alice, "alice", "me too");
  spots_transport_close(alice);
  spots_transport_close(bob);
}

/* The journal of the crash scenario: the last ciphertext alice produced, written before bob
 * sees it. */
static void journal_write(const Message *m) {
  int fd = open(path_in("journal.tmp"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (write(fd, m, sizeof *m) != (ssize_t)sizeof *m) _exit(3);
  fsync(fd);
  close(fd);
  rename(path_in("journal.tmp"), path_in("journal.bin"));
}

/* Child: a busy conversation with a fresh session (PreKey message, prekey consumption) every
 * other message, until it is killed. Bundles for bob's unused one-time prekeys are prepared
 * first, so the loop spends its time in protocol operations. */
static void crash_child(int ready_fd) {
  SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
  SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
  SpotsBuffer buf = {0};
  /* Replenishes bob's one-time prekeys when they run low. */
  spots_ensure_ready(bob, NOW, &buf);
  spots_buffer_free(&buf);
  char *plan = plan_of(bob);
  if (!plan) _exit(4);
  /* Tell the parent the busy loop starts now. */
  if (write(ready_fd, "r", 1) != 1) _exit(9);
  for (unsigned i = 0;; i++) {
    if (i % 2 == 0) {
      char *bundle = bundle_from_plan(plan, (int)(i / 2));
      if (!bundle || !process(alice, "bob", 1, bundle)) _exit(4);
      free(bundle);
    }
    Message m;
    char text[64];
    snprintf(text, sizeof text, "busy %u", i);
    if (!encrypt_one(alice, "bob", 1, text, &m)) _exit(5);
    journal_write(&m);
    if (decrypt_one(bob, "alice", 1, &m, NULL, 0, NULL) != SPOTS_STATUS_OK) _exit(6);
    if (!encrypt_one(bob, "alice", 1, "ack", &m)) _exit(7);
    if (decrypt_one(alice, "bob", 1, &m, NULL, 0, NULL) != SPOTS_STATUS_OK) _exit(8);
    if (write(ready_fd, "i", 1) != 1) _exit(9);
  }
}

static void scenario_killed_between_steps(void) {
  srand(12345);
  int rounds = 12, prekey_rounds = 0, redelivered = 0, duplicates = 0;
  for (int round = 0; round < rounds; round++) {
    unlink(path_in("journal.bin"));
    int ready[2];
    if (pipe(ready) != 0) { CHECK(0, "pipe"); return; }
    pid_t pid = fork();
    if (pid == 0) crash_child(ready[1]);
    /* The child reports the start of its loop and each completed iteration (a fresh session:
     * process_bundle, PreKey encrypt, journal, PreKey decrypt, reply; then a plain round
     * trip). Let it complete one or two, then kill it at a random point of the next pair,
     * whatever the machine's speed. */
    char byte;
    struct timespec t0, t1;
    CHECK(read(ready[0], &byte, 1) == 1, "round %d: the child did not start", round);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(read(ready[0], &byte, 1) == 1 && read(ready[0], &byte, 1) == 1, "round %d: no progress",
          round);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long pair_ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
    if (rand() % 2) CHECK(read(ready[0], &byte, 1) == 1, "round %d: no progress", round);
    long wait_ns = (long)((double)pair_ns * (double)(rand() % 1000) / 1000.0);
    struct timespec pause = {wait_ns / 1000000000L, wait_ns % 1000000000L};
    nanosleep(&pause, NULL);
    close(ready[0]);
    close(ready[1]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status), "round %d: the child died on its own (status %d)", round,
          WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* The last message alice produced is either fully processed by bob (duplicate) or not
     * at all (decrypts now). Anything else would be a half-written state. */
    SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
    SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
    size_t len = 0;
    Message *m = (Message *)read_file(path_in("journal.bin"), &len);
    if (m && len == sizeof *m) {
      if (m->type == 3) prekey_rounds++;
      SpotsStatus st = decrypt_one(bob, "alice", 1, m, NULL, 0, NULL);
      CHECK(st == SPOTS_STATUS_OK || st == SPOTS_STATUS_DUPLICATE_MESSAGE,
            "round %d: redelivery -> %d", round, st);
      redelivered += st == SPOTS_STATUS_OK;
      duplicates += st == SPOTS_STATUS_DUPLICATE_MESSAGE;
    }
    free(m);
    /* Both stores still hold a working session both ways. */
    exchange(bob, "bob", alice, "alice", "after the crash");
    exchange(alice, "alice", bob, "bob", "all good");
    spots_transport_close(alice);
    spots_transport_close(bob);
  }
  fprintf(stderr,
          "  %d kills; last message in flight: %d PreKey; bob had not committed it %d times, "
          "had committed it %d times\n",
          rounds, prekey_rounds, redelivered, duplicates);
}

typedef struct {
  SpotsTransport *handle;
  int id;
  Message *out;
  int count;
  int errors;
} Worker;

static void *encrypt_worker(void *arg) {
  Worker *w = arg;
  for (int i = 0; i < w->count; i++) {
    char text[64];
    snprintf(text, sizeof text, "thread %d message %d", w->id, i);
    if (!encrypt_one(w->handle, "bob", 1, text, &w->out[i])) w->errors++;
    SpotsBuffer buf = {0};
    if (spots_safety_number(w->handle, "bob", 1, &buf) != SPOTS_STATUS_OK) w->errors++;
    spots_buffer_free(&buf);
    /* A failing call on one thread sets only that thread's last error. */
    if (spots_trust(w->handle, "no spaces allowed", 1, &buf) != SPOTS_STATUS_INVALID_ARGUMENT ||
        !spots_last_error_message())
      w->errors++;
  }
  return NULL;
}

static void *decrypt_worker(void *arg) {
  Worker *w = arg;
  for (int i = 0; i < w->count; i++) {
    char got[64], want[64];
    snprintf(want, sizeof want, "thread %d message %d", w->id, i);
    if (decrypt_one(w->handle, "alice", 1, &w->out[i], got, sizeof got, NULL) !=
            SPOTS_STATUS_OK ||
        strcmp(got, want) != 0)
      w->errors++;
  }
  return NULL;
}

static void scenario_two_threads(void) {
  enum { N = 40 };
  static Message out[2][N];
  SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
  SpotsTransport *bob = open_device("bob.db", KEY_B, "bob", 1);
  Worker workers[2];
  pthread_t threads[2];
  for (int t = 0; t < 2; t++) {
    workers[t] = (Worker){alice, t, out[t], N, 0};
    pthread_create(&threads[t], NULL, encrypt_worker, &workers[t]);
  }
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
  CHECK(workers[0].errors == 0 && workers[1].errors == 0, "encrypt errors %d %d",
        workers[0].errors, workers[1].errors);
  /* Bob decrypts both streams at once on his one handle (out of order across threads). */
  for (int t = 0; t < 2; t++) {
    workers[t] = (Worker){bob, t, out[t], N, 0};
    pthread_create(&threads[t], NULL, decrypt_worker, &workers[t]);
  }
  for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
  CHECK(workers[0].errors == 0 && workers[1].errors == 0, "decrypt errors %d %d",
        workers[0].errors, workers[1].errors);
  spots_transport_close(alice);
  spots_transport_close(bob);
}

static void scenario_abi_edges(void) {
  SpotsBuffer buf = {0};
  EXPECT(spots_ensure_ready(NULL, NOW, &buf), SPOTS_STATUS_NULL_POINTER);
  CHECK(spots_last_error_message() && strstr(spots_last_error_message(), "handle"), "message");
  SpotsTransport *alice = open_device("alice.db", KEY_A, "alice", 1);
  EXPECT(spots_ensure_ready(alice, NOW, NULL), SPOTS_STATUS_NULL_POINTER);
  OK(spots_ensure_ready(alice, NOW, &buf));
  CHECK(spots_last_error_message() == NULL, "a success clears the last error");
  spots_buffer_free(&buf);
  spots_buffer_free(&buf); /* reset to empty: harmless */
  spots_buffer_free(NULL);
  EXPECT(spots_trust(alice, "bad agent", 1, &buf), SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_trust(alice, "bob", 0, &buf), SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_trust(alice, "bob", 1, NULL), SPOTS_STATUS_NULL_POINTER);
  const char bad_utf8[] = {(char)0xff, 'x', 0};
  EXPECT(spots_trust(alice, bad_utf8, 1, &buf), SPOTS_STATUS_INVALID_UTF8);
  OK(spots_trust(alice, "carol", 1, &buf));
  char *trust = take_string(&buf);
  CHECK(strcmp(trust, "{\"state\":\"unknown\"}") == 0, "%s", trust);
  free(trust);
  EXPECT(spots_process_bundle(alice, "carol", 1, (const uint8_t *)"{}", 2, NOW, &buf),
         SPOTS_STATUS_INVALID_ARGUMENT);
  uint8_t junk[40];
  memset(junk, 0x33, sizeof junk);
  uint32_t flags = 0;
  EXPECT(spots_decrypt_from_agent(alice, "bob", 1, 2, junk, sizeof junk, NOW, &buf, &flags),
         SPOTS_STATUS_INVALID_MESSAGE);
  EXPECT(spots_decrypt_from_agent(alice, "bob", 1, 9, junk, sizeof junk, NOW, &buf, &flags),
         SPOTS_STATUS_INVALID_MESSAGE);
  uint8_t some_key[33];
  memset(some_key, 0x05, sizeof some_key);
  EXPECT(spots_approve_identity(alice, "carol", 1, some_key, sizeof some_key),
         SPOTS_STATUS_INVALID_ARGUMENT);
  EXPECT(spots_approve_identity(alice, "bob", 1, some_key, 20), SPOTS_STATUS_INVALID_ARGUMENT);
  uint32_t devices[] = {1, 2};
  OK(spots_update_device_list(alice, "bob", devices, 2, &buf));
  char *change = take_string(&buf);
  CHECK(strcmp(change, "{\"added\":[2],\"removed\":[]}") == 0, "%s", change);
  free(change);
  Message m;
  CHECK(!encrypt_one(alice, "bob", 0, "to all", &m), "bob.2 has no session");
  CHECK(strstr(spots_last_error_json(), "\"addresses\":[\"bob.2\"]"), "%s", spots_last_error_json());
  uint32_t stale[] = {2};
  OK(spots_drop_stale_devices(alice, "bob", stale, 1, &buf));
  spots_buffer_free(&buf);
  CHECK(strlen(spots_core_version()) > 0, "version");
  spots_transport_close(alice);
  spots_transport_close(NULL);
}

static int run_all(const char *dir) {
  snprintf(DIR_, sizeof DIR_, "%s", dir);
  mkdir(dir, 0700);
  memset(KEY_A, 0xA1, sizeof KEY_A);
  memset(KEY_B, 0xB2, sizeof KEY_B);
  Scenario scenarios[] = {
      {"two devices on disk: publish, bundle, PreKey message, replies, safety numbers",
       scenario_first_contact},
      {"process restarts mid-conversation (a message in flight across the restart)",
       scenario_restart},
      {"wrong store key, another device's store, a damaged file: typed errors, files intact",
       scenario_wrong_key_and_damage},
      {"killed between and during operations: nothing lost or half-written",
       scenario_killed_between_steps},
      {"identity change: decrypts, blocks sending, approval names the shown key",
       scenario_identity_change},
      {"one handle from two threads at once", scenario_two_threads},
      {"ABI edges: NULLs, bad UTF-8, invalid arguments, last error, buffers", scenario_abi_edges},
  };
  return run_scenarios(scenarios, sizeof scenarios / sizeof *scenarios);
}

/* ---- one step of a conversation through files, for the cross-architecture check ----
 *   --party DIR NAME KEYBYTE init             ensure_ready
 *   --party DIR NAME KEYBYTE connect PEER     process PEER's bundle (DIR/PEER.bundle)
 *   --party DIR NAME KEYBYTE send PEER TEXT   encrypt to PEER.1 -> DIR/NAME-to-PEER.msg
 *   --party DIR NAME KEYBYTE recv PEER TEXT   decrypt DIR/PEER-to-NAME.msg, expect TEXT
 * Each writes DIR/NAME.bundle (its current bundle) after the step. */
static int party(int argc, char **argv) {
  if (argc < 5) return 2;
  snprintf(DIR_, sizeof DIR_, "%s", argv[2]);
  const char *name = argv[3];
  uint8_t key[32];
  memset(key, (int)strtoul(argv[4], NULL, 16), sizeof key);
  const char *op = argv[5];
  char file[128];
  snprintf(file, sizeof file, "%s.db", name);
  scenario_failed = 0;
  SpotsTransport *me = open_device(file, key, name, 1);
  if (!me) return 1;
  if (strcmp(op, "init") == 0) {
    ready(me);
  } else if (strcmp(op, "connect") == 0 && argc > 6) {
    char bundle_file[128];
    snprintf(bundle_file, sizeof bundle_file, "%s.bundle", argv[6]);
    size_t len = 0;
    char *bundle = (char *)read_file(path_in(bundle_file), &len);
    SpotsBuffer out = {0};
    OK(spots_process_bundle(me, argv[6], 1, (uint8_t *)bundle, len, NOW, &out));
    spots_buffer_free(&out);
    free(bundle);
  } else if (strcmp(op, "send") == 0 && argc > 7) {
    Message m;
    CHECK(encrypt_one(me, argv[6], 1, argv[7], &m), "encrypt");
    char msg_file[128];
    snprintf(msg_file, sizeof msg_file, "%s-to-%s.msg", name, argv[6]);
    FILE *f = fopen(path_in(msg_file), "wb");
    fwrite(&m, sizeof m, 1, f);
    fclose(f);
  } else if (strcmp(op, "recv") == 0 && argc > 7) {
    char msg_file[128], got[256];
    snprintf(msg_file, sizeof msg_file, "%s-to-%s.msg", argv[6], name);
    size_t len = 0;
    Message *m = (Message *)read_file(path_in(msg_file), &len);
    CHECK(m && len == sizeof *m, "message file");
    if (m) {
      EXPECT(decrypt_one(me, argv[6], 1, m, got, sizeof got, NULL), SPOTS_STATUS_OK);
      CHECK(strcmp(got, argv[7]) == 0, "got %s, want %s", got, argv[7]);
    }
    free(m);
  } else {
    fprintf(stderr, "unknown party step\n");
    return 2;
  }
  char *bundle = make_bundle(me);
  char bundle_file[128];
  snprintf(bundle_file, sizeof bundle_file, "%s.bundle", name);
  FILE *f = fopen(path_in(bundle_file), "wb");
  if (bundle && f) fputs(bundle, f);
  if (f) fclose(f);
  free(bundle);
  spots_transport_close(me);
  return scenario_failed;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--party") == 0) return party(argc, argv);
  if (argc != 2) {
    fprintf(stderr, "usage: dm_test DIR | dm_test --party DIR NAME KEYBYTE STEP ...\n");
    return 2;
  }
  return run_all(argv[1]);
}
