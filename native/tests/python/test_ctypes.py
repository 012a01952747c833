"""The C ABI from Python (ctypes), as a second host: two devices with separate on-disk stores
hold a DM, restart, meet a wrong key, get killed between steps and share a handle between
threads; an admin and two members hold a community conversation through rotations, shares,
both blob schemes, restarts and a seed repair.

    python3 test_ctypes.py path/to/libspots_signal.so WORK_DIR

Prints "ok - name" / "not ok - name" per scenario and ends with "N passed, M failed".
"""

import ctypes as C
import json
import os
import random
import signal
import sys
import threading
import time
import traceback

NOW = 1_800_000_000_000
KEY_A = bytes([0xA1]) * 32
KEY_B = bytes([0xB2]) * 32

# Status codes (native/include/spots_signal.h).
OK, INVALID_MESSAGE, DUPLICATE, EPOCH_REJECTED, MISSING_SESSIONS = 0, 20, 21, 24, 34
NO_SENDER_KEY_STATE = 35
INVALID_ARGUMENT, STORE_WRONG_KEY, STORE_CORRUPT, NULL_POINTER = 41, 50, 51, 60
NEW_SESSION = 2

COMMUNITY = "c0c0c0c0-0000-4000-8000-000000000001"
HOUR = 3_600_000
KEY_C = bytes([0xC3]) * 32


class Buffer(C.Structure):
    _fields_ = [("data", C.POINTER(C.c_uint8)), ("len", C.c_size_t)]


class Lib:
    def __init__(self, path):
        lib = C.CDLL(path)
        h, s, u8p, bp = C.c_void_p, C.c_char_p, C.POINTER(C.c_uint8), C.POINTER(Buffer)
        sigs = {
            "spots_transport_open": [s, u8p, C.c_size_t, s, C.c_uint32, C.POINTER(C.c_void_p)],
            "spots_ensure_ready": [h, C.c_uint64, bp],
            "spots_publish_plan": [h, bp],
            "spots_process_bundle": [h, s, C.c_uint32, u8p, C.c_size_t, C.c_uint64, bp],
            "spots_encrypt_to_agent": [h, s, C.c_uint32, u8p, C.c_size_t, C.c_uint64, bp],
            "spots_decrypt_from_agent": [h, s, C.c_uint32, C.c_uint8, u8p, C.c_size_t,
                                         C.c_uint64, bp, C.POINTER(C.c_uint32)],
            "spots_safety_number": [h, s, C.c_uint32, bp],
            "spots_trust": [h, s, C.c_uint32, bp],
            "spots_community_apply_epochs": [h, s, u8p, C.c_size_t, bp],
            "spots_community_state": [h, s, bp],
            "spots_community_rotate": [h, s, C.c_uint32, C.c_uint64, s, C.c_uint64, u8p,
                                       C.c_size_t, C.c_uint64, bp],
            "spots_community_share_sender_chain": [h, s, C.c_uint32, u8p, C.c_size_t,
                                                   C.c_uint64, bp],
            "spots_community_reset_sender_chain": [h, s, C.c_uint32, u8p, C.c_size_t,
                                                   C.c_uint64, bp],
            "spots_community_open_share": [h, s, C.c_uint32, s, C.c_uint32, s, s, C.c_uint8, u8p,
                                           C.c_size_t, C.c_uint64, bp],
            "spots_community_start_using": [h, s, C.c_uint32],
            "spots_community_observe": [h, s, C.c_uint64, bp],
            "spots_community_request_repair": [h, s, C.c_uint32, s, C.c_uint32, C.c_uint64, bp],
            "spots_community_encrypt": [h, s, u8p, C.c_size_t, C.c_uint64, bp,
                                        C.POINTER(C.c_uint32)],
            "spots_community_decrypt": [h, s, s, C.c_uint32, u8p, C.c_size_t, C.c_uint64, bp, bp],
            "spots_community_answer_sender_key_request": [h, s, C.c_uint32, u8p, C.c_size_t,
                                                          C.c_uint64, bp],
        }
        for name, args in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = C.c_int32
        lib.spots_transport_close.argtypes = [h]
        lib.spots_transport_close.restype = None
        lib.spots_buffer_free.argtypes = [bp]
        lib.spots_buffer_free.restype = None
        lib.spots_last_error_message.restype = C.c_char_p
        lib.spots_last_error_json.restype = C.c_char_p
        self.lib = lib

    def take(self, buf):
        data = C.string_at(buf.data, buf.len) if buf.len else b""
        self.lib.spots_buffer_free(C.byref(buf))
        return data


class SpotsError(Exception):
    def __init__(self, status, detail):
        super().__init__(f"status {status}: {detail}")
        self.status = status
        self.detail = detail


def u8(data):
    return (C.c_uint8 * len(data)).from_buffer_copy(data) if data else None


class Device:
    """A tiny idiomatic wrapper, as the Dart one is."""

    def __init__(self, lib, path, key, agent, device=1):
        self.L, self.lib, self.agent = lib, lib.lib, agent
        handle = C.c_void_p()
        self.check(self.lib.spots_transport_open(path.encode(), u8(key), len(key),
                                                 agent.encode(), device, C.byref(handle)))
        self.handle = handle

    def check(self, status):
        if status != OK:
            raw = self.lib.spots_last_error_json()
            raise SpotsError(status, json.loads(raw) if raw else None)

    def call_json(self, name, *args):
        buf = Buffer()
        self.check(getattr(self.lib, name)(self.handle, *args, C.byref(buf)))
        return json.loads(self.L.take(buf))

    def close(self):
        self.lib.spots_transport_close(self.handle)
        self.handle = None

    def ensure_ready(self):
        return self.call_json("spots_ensure_ready", NOW)

    def bundle(self):
        """The device's bundle as the key server hands it out."""
        plan = self.call_json("spots_publish_plan")
        kyber = (plan["one_time_kyber_pre_keys"] or [plan["last_resort_kyber_pre_key"]])[0]
        one_time = plan["one_time_pre_keys"][0] if plan["one_time_pre_keys"] else None
        return {
            "registration_id": plan["registration_id"], "device_id": plan["device_id"],
            "identity_key": plan["identity_key"],
            "signed_pre_key_id": plan["signed_pre_key"]["id"],
            "signed_pre_key_public": plan["signed_pre_key"]["public"],
            "signed_pre_key_signature": plan["signed_pre_key"]["signature"],
            "pre_key_id": one_time and one_time["id"],
            "pre_key_public": one_time and one_time["public"],
            "kyber_pre_key_id": kyber["id"], "kyber_pre_key_public": kyber["public"],
            "kyber_pre_key_signature": kyber["signature"],
        }

    def process_bundle(self, agent, device, bundle):
        data = json.dumps(bundle).encode()
        return self.call_json("spots_process_bundle", agent.encode(), device, u8(data),
                              len(data), NOW)

    def encrypt(self, agent, text, device=1):
        data = text.encode()
        out = self.call_json("spots_encrypt_to_agent", agent.encode(), device, u8(data),
                             len(data), NOW)
        return [(m["type"], bytes.fromhex(m["body"])) for m in out]

    def decrypt(self, agent, message, device=1):
        kind, body = message
        buf, flags = Buffer(), C.c_uint32()
        self.check(self.lib.spots_decrypt_from_agent(self.handle, agent.encode(), device, kind,
                                                     u8(body), len(body), NOW, C.byref(buf),
                                                     C.byref(flags)))
        return self.L.take(buf).decode(), flags.value

    def dm_bytes(self, agent, data, device=1):
        """A DM of raw bytes; returns (type, body)."""
        [m] = self.call_json("spots_encrypt_to_agent", agent.encode(), device, u8(data),
                             len(data), NOW)
        return m["type"], bytes.fromhex(m["body"])

    def dm_receive_bytes(self, agent, message, device=1):
        kind, body = message
        buf, flags = Buffer(), C.c_uint32()
        self.check(self.lib.spots_decrypt_from_agent(self.handle, agent.encode(), device, kind,
                                                     u8(body), len(body), NOW, C.byref(buf),
                                                     C.byref(flags)))
        return self.L.take(buf)

    # ---- community calls ----

    def apply_epochs(self, rows, community=COMMUNITY):
        data = json.dumps(rows).encode()
        return self.call_json("spots_community_apply_epochs", community.encode(), u8(data),
                              len(data))

    def community_state(self, community=COMMUNITY):
        return self.call_json("spots_community_state", community.encode())

    def rotate(self, epoch, recipients, now, community=COMMUNITY):
        data = json.dumps(recipients).encode()
        return self.call_json("spots_community_rotate", community.encode(), epoch["key_id"],
                              epoch["rotated_at_ms"], epoch["rotation"].encode(),
                              epoch.get("grace_until_ms") or 0, u8(data), len(data), now)

    def share_sender_chain(self, key_id, recipients, now, community=COMMUNITY):
        data = json.dumps(recipients).encode()
        return self.call_json("spots_community_share_sender_chain", community.encode(), key_id,
                              u8(data), len(data), now)

    def open_share(self, row, now=NOW):
        """Opens a share row as community-keys/mine returns it (the shape the sharing calls
        produce)."""
        body = bytes.fromhex(row["body"])
        return self.call_json("spots_community_open_share", row["from_agent_id"].encode(),
                              row["from_device_id"], row["community_id"].encode(),
                              row["key_id"], row["encryption_type"].encode(),
                              row["share_kind"].encode(), row["message_type"], u8(body),
                              len(body), now)

    def open_mine(self, rows):
        [row] = [r for r in rows if r["to_agent_id"] == self.agent]
        return self.open_share(row)

    def start_using(self, key_id, community=COMMUNITY):
        self.check(self.lib.spots_community_start_using(self.handle, community.encode(),
                                                        key_id))

    def observe(self, now, community=COMMUNITY):
        return self.call_json("spots_community_observe", community.encode(), now)

    def request_repair(self, key_id, agent, now, device=1, community=COMMUNITY):
        return self.call_json("spots_community_request_repair", community.encode(), key_id,
                              agent.encode(), device, now)

    def community_encrypt(self, text, now, community=COMMUNITY):
        data = text.encode()
        buf, key_id = Buffer(), C.c_uint32()
        status = self.lib.spots_community_encrypt(self.handle, community.encode(), u8(data),
                                                  len(data), now, C.byref(buf),
                                                  C.byref(key_id))
        blob = self.L.take(buf)
        self.check(status)
        return blob, key_id.value

    def community_decrypt(self, agent, blob, now, device=1, community=COMMUNITY):
        """(info, plaintext text)."""
        plaintext, info = Buffer(), Buffer()
        status = self.lib.spots_community_decrypt(self.handle, community.encode(),
                                                  agent.encode(), device, u8(blob), len(blob),
                                                  now, C.byref(plaintext), C.byref(info))
        text, info = self.L.take(plaintext).decode(), self.L.take(info)
        self.check(status)
        return json.loads(info), text

    def receive(self, agent, blob, text, now, scheme=None):
        info, got = self.community_decrypt(agent, blob, now)
        assert info["kind"] == "message" and got == text, (info, got, text)
        assert scheme is None or info["scheme"] == scheme, info
        return info

    def answer_sender_key_request(self, agent, request, now, device=1):
        return self.call_json("spots_community_answer_sender_key_request", agent.encode(),
                              device, u8(request), len(request), now)


def read_exactly(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def connect(a, b, b_agent):
    a.process_bundle(b_agent, 1, b.bundle())


def exchange(a, a_agent, b, b_agent, text):
    [message] = a.encrypt(b_agent, text)
    got, _ = b.decrypt(a_agent, message)
    assert got == text, (got, text)


def expect_status(status, fn, *args):
    try:
        fn(*args)
    except SpotsError as e:
        assert e.status == status, f"status {e.status}, want {status}: {e.detail}"
        return e
    raise AssertionError(f"no error, want status {status}")


class World:
    def __init__(self, lib, work):
        self.lib, self.work = lib, work

    def path(self, name):
        return os.path.join(self.work, name)

    def alice(self, key=KEY_A):
        return Device(self.lib, self.path("alice.db"), key, "alice")

    def bob(self):
        return Device(self.lib, self.path("bob.db"), KEY_B, "bob")

    def first_contact(self):
        alice, bob = self.alice(), self.bob()
        assert bob.ensure_ready()["needs_upload"]
        assert not bob.ensure_ready()["needs_upload"]
        alice.ensure_ready()
        err = expect_status(MISSING_SESSIONS, alice.encrypt, "bob", "x", 0)
        assert err.detail["details"]["unknown_agents"] == ["bob"], err.detail
        connect(alice, bob, "bob")
        [first] = alice.encrypt("bob", "hello bob", 0)
        assert first[0] == 3
        text, flags = bob.decrypt("alice", first)
        assert text == "hello bob" and flags & NEW_SESSION
        expect_status(DUPLICATE, bob.decrypt, "alice", first)
        exchange(bob, "bob", alice, "alice", "hi alice")
        sa = alice.call_json("spots_safety_number", b"bob", 1)
        sb = bob.call_json("spots_safety_number", b"alice", 1)
        assert sa["displayable"] == sb["displayable"] and len(sa["displayable"]) == 60
        alice.close(), bob.close()

    def restart(self):
        for round_ in range(3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    alice, bob = self.alice(), self.bob()
                    exchange(alice, "alice", bob, "bob", f"after restart {round_}")
                    [inflight] = bob.encrypt("alice", "in flight")
                    with open(self.path("inflight.json"), "w") as f:
                        json.dump([inflight[0], inflight[1].hex()], f)
                    alice.close(), bob.close()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            alice = self.alice()
            with open(self.path("inflight.json")) as f:
                kind, body = json.load(f)
            assert alice.decrypt("bob", (kind, bytes.fromhex(body)))[0] == "in flight"
            alice.close()

    def wrong_key(self):
        with open(self.path("alice.db"), "rb") as f:
            before = f.read()
        expect_status(STORE_WRONG_KEY, self.alice, bytes([0x77]) * 32)
        expect_status(INVALID_ARGUMENT, self.alice, b"short")
        with open(self.path("alice.db"), "rb") as f:
            assert f.read() == before, "store changed by a failed open"
        with open(self.path("junk.db"), "wb") as f:
            f.write(b"\x5a" * 4096)
        expect_status(STORE_CORRUPT, Device, self.lib, self.path("junk.db"), KEY_A, "alice")
        with open(self.path("junk.db"), "rb") as f:
            assert f.read() == b"\x5a" * 4096
        alice, bob = self.alice(), self.bob()
        exchange(alice, "alice", bob, "bob", "still here")
        alice.close(), bob.close()

    def killed(self):
        rng = random.Random(7)
        prekey_rounds = redelivered = duplicates = 0
        for round_ in range(10):
            journal = self.path("journal.json")
            if os.path.exists(journal):
                os.unlink(journal)
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    alice, bob = self.alice(), self.bob()
                    bob.ensure_ready()
                    os.write(ready_w, b"r")
                    i = 0
                    while True:
                        if i % 2 == 0:
                            connect(alice, bob, "bob")
                        [m] = alice.encrypt("bob", f"busy {i}")
                        tmp = journal + ".tmp"
                        with open(tmp, "w") as f:
                            json.dump([m[0], m[1].hex()], f)
                            f.flush()
                            os.fsync(f.fileno())
                        os.rename(tmp, journal)
                        bob.decrypt("alice", m)
                        exchange(bob, "bob", alice, "alice", "ack")
                        os.write(ready_w, b"i")
                        i += 1
                finally:
                    os._exit(3)
            # The child reports the start of its loop and each iteration (a fresh session every
            # other one): let it complete one or two, then kill it at a random point of the
            # next pair, whatever the machine's speed.
            assert os.read(ready_r, 1) == b"r", "the child did not start"
            t0 = time.monotonic()
            assert read_exactly(ready_r, 2) == b"ii", "no progress"
            pair = time.monotonic() - t0
            if rng.random() < 0.5:
                os.read(ready_r, 1)
            time.sleep(rng.random() * pair)
            os.kill(pid, signal.SIGKILL)
            os.close(ready_r), os.close(ready_w)
            _, status = os.waitpid(pid, 0)
            assert os.WIFSIGNALED(status), f"child exited by itself: {status}"
            alice, bob = self.alice(), self.bob()
            if os.path.exists(journal):
                with open(journal) as f:
                    kind, body = json.load(f)
                prekey_rounds += kind == 3
                try:
                    bob.decrypt("alice", (kind, bytes.fromhex(body)))
                    redelivered += 1
                except SpotsError as e:
                    assert e.status == DUPLICATE, f"half-written state: {e}"
                    duplicates += 1
            exchange(bob, "bob", alice, "alice", "after the crash")
            exchange(alice, "alice", bob, "bob", "all good")
            alice.close(), bob.close()
        print(f"  10 kills; last message in flight: {prekey_rounds} PreKey; bob had not committed "
              f"it {redelivered} times, had committed it {duplicates} times", file=sys.stderr)

    def threads(self):
        alice, bob = self.alice(), self.bob()
        n = 30
        out = {0: [], 1: []}
        errors = []

        def sender(t):
            try:
                for i in range(n):
                    out[t].append(alice.encrypt("bob", f"thread {t} message {i}")[0])
                    alice.call_json("spots_safety_number", b"bob", 1)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        def receiver(t):
            try:
                for i, m in enumerate(out[t]):
                    assert bob.decrypt("alice", m)[0] == f"thread {t} message {i}"
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        for fn in (sender, receiver):
            workers = [threading.Thread(target=fn, args=(t,)) for t in (0, 1)]
            [w.start() for w in workers]
            [w.join() for w in workers]
        assert not errors, errors
        alice.close(), bob.close()


def recipient(device, bundle_of=None):
    """A recipients_json entry: device 1 of an agent, with a bundle when there is no session."""
    return {"agent_id": device, "device_id": 1,
            "bundle": bundle_of.bundle() if bundle_of else None}


def store_bytes(path):
    data = b""
    for name in (path, path + "-wal"):
        if os.path.exists(name):
            with open(name, "rb") as f:
                data += f.read()
    return data


class CommunityWorld:
    """An admin and two members, each with its own store file (not the DM scenarios')."""

    EPOCH_1 = {"key_id": 1, "rotated_at_ms": NOW, "rotation": "initial", "grace_until_ms": None}
    EPOCH_2 = {"key_id": 2, "rotated_at_ms": NOW + HOUR, "rotation": "soft",
               "grace_until_ms": NOW + 2 * HOUR}

    def __init__(self, lib, work):
        self.lib, self.work = lib, work

    def path(self, agent):
        return os.path.join(self.work, f"community-{agent}.db")

    def open(self, agent):
        key = {"admin": KEY_A, "bob": KEY_B, "carol": KEY_C}[agent]
        return Device(self.lib, self.path(agent), key, agent)

    def open_all(self):
        return self.open("admin"), self.open("bob"), self.open("carol")

    def conversation(self):
        admin, bob, carol = self.open_all()
        for device in (admin, bob, carol):
            device.ensure_ready()
        assert bob.community_state() is None
        # The admin starts the first epoch from the key server's row; the shares are sealed
        # over Signal after processing both members' bundles (PreKey messages).
        rotation = admin.rotate(self.EPOCH_1, [recipient("bob", bob), recipient("carol", carol)],
                                NOW)
        assert rotation["epoch"]["epoch_id"] == "cbbe61b0-99e2-82db-968f-bc3f3535d6ec"
        shares = rotation["shares"]
        assert [s["message_type"] for s in shares] == [3, 3], shares
        assert {s["share_kind"] for s in shares} == {"epoch_key_v1"}
        for member in (bob, carol):
            state = member.apply_epochs([self.EPOCH_1])
            assert not state["epochs"][0]["has_epoch_key"]
            assert member.observe(NOW) == [{"action": "fetch_my_share", "key_id": 1}]
            opened = member.open_mine(shares)
            assert opened["first_for_community"] and opened["from_agent_id"] == "admin"
            assert member.observe(NOW) == [{"action": "start_using_epoch", "key_id": 1}]
            member.start_using(1)

        # The epoch scheme both ways.
        blob, key_id = bob.community_encrypt("hello from bob", NOW + 1)
        assert (blob[0], key_id) == (1, 1)
        admin.receive("bob", blob, "hello from bob", NOW + 2, "epoch")
        carol.receive("bob", blob, "hello from bob", NOW + 2, "epoch")
        blob, _ = admin.community_encrypt("welcome", NOW + 3)
        bob.receive("admin", blob, "welcome", NOW + 4, "epoch")
        carol.receive("admin", blob, "welcome", NOW + 4, "epoch")

        # Close every store mid-way; the members open their next step in a fresh process.
        in_flight, _ = carol.community_encrypt("across the restart", NOW + 5)
        for device in (admin, bob, carol):
            device.close()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                bob = self.open("bob")
                bob.receive("carol", in_flight, "across the restart", NOW + 6, "epoch")
                bob.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        admin, bob, carol = self.open_all()
        admin.receive("carol", in_flight, "across the restart", NOW + 6, "epoch")

        # Sender-chain seeds, each sealed over Signal (bob and carol have no session yet: each
        # other's bundle goes along), then sender-chain messages.
        from_admin = admin.share_sender_chain(1, [recipient("bob"), recipient("carol")], NOW + 10)
        from_bob = bob.share_sender_chain(1, [recipient("admin"), recipient("carol", carol)],
                                          NOW + 10)
        from_carol = carol.share_sender_chain(1, [recipient("admin"), recipient("bob", bob)],
                                              NOW + 10)
        assert {r["share_kind"] for r in from_admin} == {"epoch_sender_chain_seed_v1"}
        bob.open_mine(from_admin), carol.open_mine(from_admin)
        admin.open_mine(from_bob), carol.open_mine(from_bob)
        admin.open_mine(from_carol), bob.open_mine(from_carol)
        blob, key_id = admin.community_encrypt("a sender-chain message", NOW + 20)
        assert (blob[0], key_id) == (2, 1)
        bob.receive("admin", blob, "a sender-chain message", NOW + 21, "sender_chain")
        carol.receive("admin", blob, "a sender-chain message", NOW + 21, "sender_chain")
        expect_status(DUPLICATE, bob.community_decrypt, "admin", blob, NOW + 22)
        blob, _ = bob.community_encrypt("a chain reply", NOW + 23)
        admin.receive("bob", blob, "a chain reply", NOW + 24, "sender_chain")

        # A soft rotation to epoch 2, one hour of grace for epoch 1.
        rotated_at, grace_until = self.EPOCH_2["rotated_at_ms"], self.EPOCH_2["grace_until_ms"]
        rotation = admin.rotate(self.EPOCH_2, [recipient("bob"), recipient("carol")], rotated_at)
        assert rotation["epoch"]["grace_until_ms"] == grace_until
        bob.apply_epochs([self.EPOCH_1, self.EPOCH_2])
        assert bob.observe(rotated_at + 1) == [{"action": "fetch_my_share", "key_id": 2}]
        bob.open_mine(rotation["shares"])
        bob.start_using(2)
        in_2, key_id = bob.community_encrypt("in epoch 2", rotated_at + 2)
        assert key_id == 2
        admin.receive("bob", in_2, "in epoch 2", rotated_at + 3, "epoch")
        # Carol lags: her epoch-1 messages are read inside the grace window ...
        blob, key_id = carol.community_encrypt("still in epoch 1", rotated_at + 10)
        assert key_id == 1
        admin.receive("carol", blob, "still in epoch 1", rotated_at + 11, "sender_chain")
        bob.receive("carol", blob, "still in epoch 1", rotated_at + 11, "sender_chain")
        # ... and refused after it, leaving the reader's store as it was.
        blob, _ = carol.community_encrypt("too late", grace_until + 1)
        before = store_bytes(self.path("admin"))
        expect_status(EPOCH_REJECTED, admin.community_decrypt, "carol", blob, grace_until + 2)
        assert store_bytes(self.path("admin")) == before
        carol.close()
        carol = self.open("carol")
        carol.apply_epochs([self.EPOCH_2])
        expect_status(NO_SENDER_KEY_STATE, carol.community_decrypt, "bob", in_2, rotated_at + 12)
        carol.open_mine(rotation["shares"])
        carol.receive("bob", in_2, "in epoch 2", rotated_at + 13, "epoch")
        assert carol.observe(grace_until + 3) == [{"action": "start_using_epoch", "key_id": 2}]
        carol.start_using(2)
        blob, key_id = carol.community_encrypt("carol in epoch 2", grace_until + 3)
        assert key_id == 2
        bob.receive("carol", blob, "carol in epoch 2", grace_until + 4, "epoch")
        assert carol.community_state()["sending_key_id"] == 2
        admin.close(), bob.close(), carol.close()

    def repair(self):
        admin, bob, carol = self.open_all()
        now = self.EPOCH_2["grace_until_ms"] + 10
        # The admin's chain for epoch 2 reaches bob; carol's copy is lost.
        seeds = admin.share_sender_chain(2, [recipient("bob")], now)
        bob.open_mine(seeds)
        first, key_id = admin.community_encrypt("first", now + 1)
        assert (first[0], key_id) == (2, 2)
        bob.receive("admin", first, "first", now + 2, "sender_chain")
        info, text = carol.community_decrypt("admin", first, now + 2)
        assert info["kind"] == "missing_seed" and info["agent_id"] == "admin" and text == "", info
        request = bytes.fromhex(info["request"])
        carol.close()
        carol = self.open("carol")
        [action] = carol.observe(now + 2 * HOUR)
        assert action["action"] == "request_repair" and action["key_id"] == 2, action
        # The request to send now (stamped now); observe is quiet for another hour.
        again = carol.request_repair(2, "admin", now + 2 * HOUR)
        assert (again["agent_id"], again["device_id"]) == ("admin", 1), again
        request = bytes.fromhex(again["request"])
        assert carol.observe(now + 2 * HOUR + 1) == []
        # The request travels as a DM; the answer is a re-share for carol.
        got = admin.dm_receive_bytes("carol", carol.dm_bytes("admin", request))
        assert got == request
        expect_status(INVALID_MESSAGE, admin.answer_sender_key_request, "carol", b"junk", now)
        answer = admin.answer_sender_key_request("carol", got, now + 3)
        assert answer["share_kind"] == "re_share_v1" and answer["to_agent_id"] == "carol"
        carol.open_share(answer)
        assert carol.community_state()["pending_repairs"] == []
        expect_status(DUPLICATE, carol.community_decrypt, "admin", first, now + 4)
        second, _ = admin.community_encrypt("second", now + 5)
        carol.receive("admin", second, "second", now + 6, "sender_chain")
        bob.receive("admin", second, "second", now + 6, "sender_chain")
        admin.close(), bob.close(), carol.close()


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lib, work = Lib(sys.argv[1]), sys.argv[2]
    os.makedirs(work, exist_ok=True)
    world = World(lib, work)
    community = CommunityWorld(lib, work)
    scenarios = [
        ("two devices on disk: publish, bundle, PreKey message, reply, safety numbers",
         world.first_contact),
        ("process restarts mid-conversation", world.restart),
        ("wrong store key and a damaged file: typed errors, files intact", world.wrong_key),
        ("killed between and during operations: nothing lost or half-written", world.killed),
        ("one handle from two threads at once", world.threads),
        ("community: admin + two members on disk, epoch 1 shared over Signal (bundles "
         "processed), epoch-scheme messages both ways, a restart in a new process, sender-chain "
         "seeds and messages, soft rotation to epoch 2 (epoch 1 read in grace, refused after)",
         community.conversation),
        ("community: seed repair through a DM, across a restart", community.repair),
    ]
    passed = failed = 0
    for name, run in scenarios:
        try:
            run()
            print(f"ok - {name}", flush=True)
            passed += 1
        except Exception:  # noqa: BLE001 - every failure is reported
            traceback.print_exc()
            print(f"not ok - {name}", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
