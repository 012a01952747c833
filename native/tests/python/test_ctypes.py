"""The C ABI from Python (ctypes), as a second host: two devices with separate on-disk stores
hold a DM, restart, meet a wrong key, get killed between steps and share a handle between
threads.

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
OK, DUPLICATE, MISSING_SESSIONS = 0, 21, 34
INVALID_ARGUMENT, STORE_WRONG_KEY, STORE_CORRUPT, NULL_POINTER = 41, 50, 51, 60
NEW_SESSION = 2


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


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lib, work = Lib(sys.argv[1]), sys.argv[2]
    os.makedirs(work, exist_ok=True)
    world = World(lib, work)
    scenarios = [
        ("two devices on disk: publish, bundle, PreKey message, reply, safety numbers",
         world.first_contact),
        ("process restarts mid-conversation", world.restart),
        ("wrong store key and a damaged file: typed errors, files intact", world.wrong_key),
        ("killed between and during operations: nothing lost or half-written", world.killed),
        ("one handle from two threads at once", world.threads),
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
