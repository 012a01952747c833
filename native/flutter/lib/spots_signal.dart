/// SPOTS end-to-end encryption over the native `libspots_signal` (see native/README.md).
///
/// ```dart
/// final transport = SignalTransport.open(
///   storePath: '${dir.path}/signal.sqlite', storeKey: keyFromKeychain,
///   agentId: myAgentId, deviceId: myDeviceId);
/// final ready = transport.ensureReady();
/// if (ready.needsUpload) await keyServer.publish(ready.upload);
/// ```
///
/// Every call is synchronous and may take milliseconds (the first [SignalTransport.ensureReady]
/// generates prekeys): call it from a background isolate when that matters. A handle may be
/// used from several isolates at once ([SignalTransport.fromAddress]); the library serializes
/// calls.
library spots_signal;

import 'dart:convert';
import 'dart:ffi';
import 'dart:io' show Platform;
import 'dart:typed_data';

import 'package:ffi/ffi.dart';

import 'src/bindings.g.dart';

DynamicLibrary _openLibrary() => Platform.isIOS
    // iOS: the static library is linked into the app binary.
    ? DynamicLibrary.process()
    : DynamicLibrary.open('libspots_signal.so');

final SpotsSignalBindings _lib = SpotsSignalBindings(_openLibrary());

/// A failed call: the status code (native/README.md lists them), the library's message and,
/// for missing sessions and untrusted identities, the devices concerned.
class SpotsException implements Exception {
  SpotsException(this.status, this.message, this.details);

  final int status;
  final String message;
  final Map<String, dynamic>? details;

  bool get isDuplicate => status == SpotsStatus.SPOTS_STATUS_DUPLICATE_MESSAGE;
  bool get isMissingSessions => status == SpotsStatus.SPOTS_STATUS_MISSING_SESSIONS;
  bool get isUntrustedIdentity => status == SpotsStatus.SPOTS_STATUS_UNTRUSTED_IDENTITY;
  bool get isWrongStoreKey => status == SpotsStatus.SPOTS_STATUS_STORE_WRONG_KEY;
  bool get isStoreCorrupt => status == SpotsStatus.SPOTS_STATUS_STORE_CORRUPT;

  /// Retrying later may succeed (storage busy or failing); nothing changed.
  bool get isTransientStoreError => status == SpotsStatus.SPOTS_STATUS_STORE_ERROR;

  /// `agent.device` addresses without a session, or with an unapproved identity change.
  List<String> get addresses => List<String>.from(details?['addresses'] ?? const []);

  /// Agents whose device list is unknown: fetch bundles for all their devices.
  List<String> get unknownAgents => List<String>.from(details?['unknown_agents'] ?? const []);

  @override
  String toString() => 'SpotsException($status): $message';
}

void _check(int status) {
  if (status == SpotsStatus.SPOTS_STATUS_OK) return;
  final json = _lib.spots_last_error_json();
  final error = json == nullptr
      ? <String, dynamic>{'message': 'status $status'}
      : jsonDecode(json.cast<Utf8>().toDartString()) as Map<String, dynamic>;
  throw SpotsException(status, error['message'] as String? ?? '',
      error['details'] as Map<String, dynamic>?);
}

/// Runs [call] with a zeroed out-buffer and returns its bytes (wiped and freed in the library).
Uint8List _withBuffer(Arena arena, int Function(Pointer<SpotsBuffer>) call) {
  final buffer = arena<SpotsBuffer>();
  try {
    _check(call(buffer));
    final len = buffer.ref.len;
    return len == 0 ? Uint8List(0) : Uint8List.fromList(buffer.ref.data.asTypedList(len));
  } finally {
    _lib.spots_buffer_free(buffer);
  }
}

dynamic _json(Arena arena, int Function(Pointer<SpotsBuffer>) call) =>
    jsonDecode(utf8.decode(_withBuffer(arena, call)));

Pointer<Uint8> _bytes(Arena arena, List<int> data) {
  final p = arena<Uint8>(data.isEmpty ? 1 : data.length);
  p.asTypedList(data.isEmpty ? 1 : data.length).setAll(0, data);
  return p;
}

Pointer<Char> _str(Arena arena, String s) => s.toNativeUtf8(allocator: arena).cast();

int _ms(DateTime? now) => (now ?? DateTime.now()).millisecondsSinceEpoch;

Uint8List _hex(String s) => Uint8List.fromList(
    List<int>.generate(s.length ~/ 2, (i) => int.parse(s.substring(2 * i, 2 * i + 2), radix: 16)));

/// What [SignalTransport.ensureReady] did and what to publish.
class ReadyReport {
  ReadyReport(this.json);
  final Map<String, dynamic> json;
  bool get needsUpload => json['needs_upload'] as bool;
  bool get identityCreated => json['identity_created'] as bool;

  /// The body for the key server's publish endpoint.
  Map<String, dynamic> get upload => json['upload'] as Map<String, dynamic>;
}

/// One ciphertext for one device, for the mailbox.
class OutgoingMessage {
  OutgoingMessage(this.agentId, this.deviceId, this.type, this.body);
  final String agentId;
  final int deviceId;

  /// 3 = PreKey (until the peer replies), 2 = Whisper.
  final int type;
  final Uint8List body;
}

/// A decrypted message.
class Decrypted {
  Decrypted(this.plaintext, int flags)
      : identityChanged = flags & SPOTS_DECRYPT_IDENTITY_CHANGED != 0,
        newSession = flags & SPOTS_DECRYPT_NEW_SESSION != 0;
  final Uint8List plaintext;

  /// Show the user: the sender's key changed; sending to it fails until [SignalTransport.approveIdentity].
  final bool identityChanged;
  final bool newSession;
}

/// One local device: its encrypted store and the protocol operations over it.
class SignalTransport {
  SignalTransport._(this._handle);

  /// The same device from another isolate (see [address]).
  SignalTransport.fromAddress(int address) : _handle = Pointer<SpotsTransport>.fromAddress(address);

  Pointer<SpotsTransport> _handle;

  /// The handle's address, to use the device from another isolate.
  int get address => _handle.address;

  /// Opens (creating on first use) the store at [storePath] with the 32-byte [storeKey] kept in
  /// the iOS Keychain / Android Keystore. Throws [SpotsException] (`isWrongStoreKey`,
  /// `isStoreCorrupt`, ...) without changing the file.
  static SignalTransport open(
      {required String storePath,
      required Uint8List storeKey,
      required String agentId,
      required int deviceId}) {
    return using((arena) {
      final out = arena<Pointer<SpotsTransport>>();
      _check(_lib.spots_transport_open(_str(arena, storePath), _bytes(arena, storeKey),
          storeKey.length, _str(arena, agentId), deviceId, out));
      return SignalTransport._(out.value);
    });
  }

  /// Closes the store. The object must not be used afterwards.
  void close() {
    _lib.spots_transport_close(_handle);
    _handle = nullptr;
  }

  /// Creates the identity on first use, rotates and replenishes prekeys; publish
  /// [ReadyReport.upload] when [ReadyReport.needsUpload]. Call at start-up and daily.
  ReadyReport ensureReady({DateTime? now}) => using((a) => ReadyReport(
      _json(a, (out) => _lib.spots_ensure_ready(_handle, _ms(now), out)) as Map<String, dynamic>));

  /// Everything currently published, to re-upload when the server's stock disagrees.
  Map<String, dynamic> publishPlan() =>
      using((a) => _json(a, (out) => _lib.spots_publish_plan(_handle, out)) as Map<String, dynamic>);

  /// Starts a session from a bundle fetched from the key server (its JSON text).
  Map<String, dynamic> processBundle(String agentId, int deviceId, String bundleJson,
          {DateTime? now}) =>
      using((a) {
        final bytes = utf8.encode(bundleJson);
        return _json(
            a,
            (out) => _lib.spots_process_bundle(_handle, _str(a, agentId), deviceId,
                _bytes(a, bytes), bytes.length, _ms(now), out)) as Map<String, dynamic>;
      });

  /// Encrypts to one device, or to every device of [agentId] (and the user's own other
  /// devices) when [deviceId] is null. On `isMissingSessions`, fetch the bundles of
  /// [SpotsException.addresses] / [SpotsException.unknownAgents], process them, retry.
  List<OutgoingMessage> encrypt(String agentId, List<int> plaintext, {int? deviceId, DateTime? now}) =>
      using((a) {
        final list = _json(
            a,
            (out) => _lib.spots_encrypt_to_agent(_handle, _str(a, agentId), deviceId ?? 0,
                _bytes(a, plaintext), plaintext.length, _ms(now), out)) as List<dynamic>;
        return [
          for (final m in list.cast<Map<String, dynamic>>())
            OutgoingMessage(m['agent_id'] as String, m['device_id'] as int, m['type'] as int,
                _hex(m['body'] as String))
        ];
      });

  /// Decrypts a message from the mailbox. `isDuplicate` means it was already decrypted.
  Decrypted decrypt(String agentId, int deviceId, int messageType, List<int> body, {DateTime? now}) =>
      using((a) {
        final flags = a<Uint32>();
        final plaintext = _withBuffer(
            a,
            (out) => _lib.spots_decrypt_from_agent(_handle, _str(a, agentId), deviceId, messageType,
                _bytes(a, body), body.length, _ms(now), out, flags));
        return Decrypted(plaintext, flags.value);
      });

  /// `{"state": "unknown" | "trusted" | "changed", ...}` for a peer device.
  Map<String, dynamic> trust(String agentId, int deviceId) => using((a) =>
      _json(a, (out) => _lib.spots_trust(_handle, _str(a, agentId), deviceId, out))
          as Map<String, dynamic>);

  /// Accepts a peer device's new identity key: [identityKey] is the 33-byte key the user was
  /// shown ([trust]'s `identity_key`). Throws with UNTRUSTED_IDENTITY if a newer key arrived.
  void approveIdentity(String agentId, int deviceId, Uint8List identityKey) => using((a) =>
      _check(_lib.spots_approve_identity(
          _handle, _str(a, agentId), deviceId, _bytes(a, identityKey), identityKey.length)));

  void markVerified(String agentId, int deviceId) =>
      using((a) => _check(_lib.spots_mark_verified(_handle, _str(a, agentId), deviceId)));

  /// `{"displayable": "60 digits", "scannable": "<hex QR payload>"}`.
  Map<String, dynamic> safetyNumber(String agentId, int deviceId) => using((a) =>
      _json(a, (out) => _lib.spots_safety_number(_handle, _str(a, agentId), deviceId, out))
          as Map<String, dynamic>);

  /// Whether a QR payload scanned from the peer's screen matches.
  bool compareSafetyNumber(String agentId, int deviceId, List<int> scanned) => using((a) {
        final matches = a<Bool>();
        _check(_lib.spots_compare_safety_number(
            _handle, _str(a, agentId), deviceId, _bytes(a, scanned), scanned.length, matches));
        return matches.value;
      });

  List<int> devices(String agentId) => using((a) => List<int>.from(
      _json(a, (out) => _lib.spots_devices(_handle, _str(a, agentId), out)) as List<dynamic>));

  /// Replaces an agent's device list by the server's; returns `{"added": [..], "removed": [..]}`.
  Map<String, dynamic> updateDeviceList(String agentId, List<int> deviceIds) => using((a) {
        final ids = a<Uint32>(deviceIds.isEmpty ? 1 : deviceIds.length);
        ids.asTypedList(deviceIds.isEmpty ? 1 : deviceIds.length).setAll(0, deviceIds);
        return _json(
            a,
            (out) => _lib.spots_update_device_list(
                _handle, _str(a, agentId), ids, deviceIds.length, out)) as Map<String, dynamic>;
      });

  /// Drops devices the server reported stale, with their sessions.
  Map<String, dynamic> dropStaleDevices(String agentId, List<int> stale) => using((a) {
        final ids = a<Uint32>(stale.isEmpty ? 1 : stale.length);
        ids.asTypedList(stale.isEmpty ? 1 : stale.length).setAll(0, stale);
        return _json(
            a,
            (out) => _lib.spots_drop_stale_devices(_handle, _str(a, agentId), ids, stale.length, out))
            as Map<String, dynamic>;
      });

  static String get version => _lib.spots_core_version().cast<Utf8>().toDartString();
}
