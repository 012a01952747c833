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

  /// A community message stamped after its epoch closed (hard rotation, or after a soft
  /// rotation's grace window).
  bool get isEpochRejected => status == SpotsStatus.SPOTS_STATUS_EPOCH_REJECTED;

  /// Community key material is not here (yet): apply the epoch rows, fetch and open the share.
  bool get isNoSenderKeyState => status == SpotsStatus.SPOTS_STATUS_NO_SENDER_KEY_STATE;

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

/// A `community_sender_key_state` row as the key server returns it: [keyId] is the server's
/// epoch number (1, 2, ...); the library derives the epoch's UUID from it.
class CommunityEpochRow {
  CommunityEpochRow(
      {required this.keyId, required this.rotatedAt, required this.rotation, this.graceUntil});
  final int keyId;
  final DateTime rotatedAt;

  /// `initial` (the community's first epoch, treated as `hard`), `hard` or `soft`.
  final String rotation;

  /// Soft rotations: until when the previous epoch is still accepted.
  final DateTime? graceUntil;

  Map<String, dynamic> toJson() => {
        'key_id': keyId,
        'rotated_at_ms': rotatedAt.millisecondsSinceEpoch,
        'rotation': rotation,
        'grace_until_ms': graceUntil?.millisecondsSinceEpoch,
      };
}

/// A member device to seal a share for, with its bundle (the key server's JSON) when this
/// device has no session with it yet.
class ShareRecipient {
  ShareRecipient(this.agentId, this.deviceId, {this.bundleJson});
  final String agentId;
  final int deviceId;
  final String? bundleJson;

  Map<String, dynamic> toJson() => {
        'agent_id': agentId,
        'device_id': deviceId,
        'bundle': bundleJson == null ? null : jsonDecode(bundleJson!),
      };
}

/// A `community_sender_key_shares` row: made by the sharing calls (post it to
/// `community-keys/shares`), or fetched (`community-keys/mine`) and given to
/// [SignalTransport.openShare].
class ShareRow {
  ShareRow(
      {required this.communityId,
      required this.keyId,
      required this.fromAgentId,
      required this.fromDeviceId,
      required this.toAgentId,
      required this.toDeviceId,
      this.encryptionType = 'signal_protocol',
      required this.shareKind,
      required this.messageType,
      required this.body});

  factory ShareRow.fromJson(Map<String, dynamic> json) => ShareRow(
      communityId: json['community_id'] as String,
      keyId: json['key_id'] as int,
      fromAgentId: json['from_agent_id'] as String,
      fromDeviceId: json['from_device_id'] as int,
      toAgentId: json['to_agent_id'] as String,
      toDeviceId: json['to_device_id'] as int,
      encryptionType: json['encryption_type'] as String,
      shareKind: json['share_kind'] as String,
      messageType: json['message_type'] as int,
      body: _hex(json['body'] as String));

  final String communityId;
  final int keyId;
  final String fromAgentId;
  final int fromDeviceId;
  final String toAgentId;
  final int toDeviceId;
  final String encryptionType;

  /// `epoch_key_v1`, `epoch_sender_chain_seed_v1` or `re_share_v1`.
  final String shareKind;

  /// 3 = PreKey, 2 = Whisper.
  final int messageType;
  final Uint8List body;
}

List<ShareRow> _shares(dynamic list) => [
      for (final row in (list as List<dynamic>).cast<Map<String, dynamic>>())
        ShareRow.fromJson(row)
    ];

String _recipients(List<ShareRecipient> recipients) =>
    jsonEncode([for (final r in recipients) r.toJson()]);

/// What [SignalTransport.rotateCommunity] started and the shares to post.
class CommunityRotation {
  CommunityRotation(this.epoch, this.shares);

  /// `{"key_id", "epoch_id", "rotated_at_ms", "rotation", "grace_until_ms"}`.
  final Map<String, dynamic> epoch;
  final List<ShareRow> shares;
}

/// A community blob to post to `community_message_blobs` with its epoch's [keyId].
class CommunityBlob {
  CommunityBlob(this.blob, this.keyId);
  final Uint8List blob;
  final int keyId;
}

/// A repair request: send [request] as a DM ([SignalTransport.encrypt]) to the device.
class RepairRequest {
  RepairRequest(this.agentId, this.deviceId, this.request);
  RepairRequest._fromJson(Map<String, dynamic> json)
      : this(json['agent_id'] as String, json['device_id'] as int, _hex(json['request'] as String));
  final String agentId;
  final int deviceId;
  final Uint8List request;
}

/// What [SignalTransport.communityDecrypt] got: a [CommunityMessage] or a [MissingSeed].
sealed class CommunityReceived {}

/// A decrypted community message.
class CommunityMessage extends CommunityReceived {
  CommunityMessage(this.plaintext, this.info);
  final Uint8List plaintext;

  /// `{"kind": "message", "key_id", "epoch_id", "sent_at_ms", "scheme", "chain_id", "iteration"}`.
  final Map<String, dynamic> info;
  int get keyId => info['key_id'] as int;
  DateTime get sentAt => DateTime.fromMillisecondsSinceEpoch(info['sent_at_ms'] as int);
}

/// The sender's chain is missing: send [repair] and decrypt later messages once the
/// re-share is opened (the repair is recorded; [SignalTransport.observeCommunity] asks again).
class MissingSeed extends CommunityReceived {
  MissingSeed(this.repair);
  final RepairRequest repair;
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

  // ---- communities (native/README.md, "Communities") ----

  /// This device's state for a community (epochs, sending epoch, pending repairs), or null.
  Map<String, dynamic>? communityState(String communityId) => using((a) =>
      _json(a, (out) => _lib.spots_community_state(_handle, _str(a, communityId), out))
          as Map<String, dynamic>?);

  /// Records the community's epoch rows (all or none); returns [communityState].
  Map<String, dynamic> applyCommunityEpochs(String communityId, List<CommunityEpochRow> rows) =>
      using((a) {
        final bytes = utf8.encode(jsonEncode([for (final r in rows) r.toJson()]));
        return _json(
                a,
                (out) => _lib.spots_community_apply_epochs(
                    _handle, _str(a, communityId), _bytes(a, bytes), bytes.length, out))
            as Map<String, dynamic>;
      });

  /// Admins: starts [epoch] (the row `community-keys/rotate` returned, or the community's
  /// first epoch) and seals its key for every recipient. On `isMissingSessions` nothing
  /// changed: fetch those bundles and call again with the same row.
  CommunityRotation rotateCommunity(
          String communityId, CommunityEpochRow epoch, List<ShareRecipient> recipients,
          {DateTime? now}) =>
      using((a) {
        final bytes = utf8.encode(_recipients(recipients));
        final json = _json(
            a,
            (out) => _lib.spots_community_rotate(
                _handle,
                _str(a, communityId),
                epoch.keyId,
                epoch.rotatedAt.millisecondsSinceEpoch,
                _str(a, epoch.rotation),
                epoch.graceUntil?.millisecondsSinceEpoch ?? 0,
                _bytes(a, bytes),
                bytes.length,
                _ms(now),
                out)) as Map<String, dynamic>;
        return CommunityRotation(json['epoch'] as Map<String, dynamic>, _shares(json['shares']));
      });

  /// Our sender chain for epoch [keyId], sealed for every recipient (share it before sending
  /// in the epoch).
  List<ShareRow> shareSenderChain(String communityId, int keyId, List<ShareRecipient> recipients,
          {DateTime? now}) =>
      using((a) {
        final bytes = utf8.encode(_recipients(recipients));
        return _shares(_json(
            a,
            (out) => _lib.spots_community_share_sender_chain(_handle, _str(a, communityId), keyId,
                _bytes(a, bytes), bytes.length, _ms(now), out)));
      });

  /// A fresh sender chain for epoch [keyId] (no rotation), sealed for every recipient.
  List<ShareRow> resetSenderChain(String communityId, int keyId, List<ShareRecipient> recipients,
          {DateTime? now}) =>
      using((a) {
        final bytes = utf8.encode(_recipients(recipients));
        return _shares(_json(
            a,
            (out) => _lib.spots_community_reset_sender_chain(_handle, _str(a, communityId), keyId,
                _bytes(a, bytes), bytes.length, _ms(now), out)));
      });

  /// Opens a share addressed to this device (apply the epoch rows first). Returns
  /// `{"from_agent_id", "from_device_id", "community_id", "key_id", "epoch_id", "share_kind",
  /// "first_for_community"}`.
  Map<String, dynamic> openShare(ShareRow row, {DateTime? now}) => using((a) => _json(
      a,
      (out) => _lib.spots_community_open_share(
          _handle,
          _str(a, row.fromAgentId),
          row.fromDeviceId,
          _str(a, row.communityId),
          row.keyId,
          _str(a, row.encryptionType),
          _str(a, row.shareKind),
          row.messageType,
          _bytes(a, row.body),
          row.body.length,
          _ms(now),
          out)) as Map<String, dynamic>);

  /// Sends in epoch [keyId] from now on (the `start_using_epoch` action).
  void startUsingEpoch(String communityId, int keyId) => using(
      (a) => _check(_lib.spots_community_start_using(_handle, _str(a, communityId), keyId)));

  /// What to do now, in order: `fetch_my_share`, `request_repair`, `start_using_epoch`
  /// actions (maps with `action`, `key_id`, ...).
  List<Map<String, dynamic>> observeCommunity(String communityId, {DateTime? now}) => using((a) =>
      (_json(a, (out) => _lib.spots_community_observe(_handle, _str(a, communityId), _ms(now), out))
              as List<dynamic>)
          .cast<Map<String, dynamic>>());

  /// The request for a `request_repair` action (recorded as sent now).
  RepairRequest requestRepair(String communityId, int keyId, String agentId, int deviceId,
          {DateTime? now}) =>
      using((a) => RepairRequest._fromJson(_json(
          a,
          (out) => _lib.spots_community_request_repair(_handle, _str(a, communityId), keyId,
              _str(a, agentId), deviceId, _ms(now), out)) as Map<String, dynamic>));

  /// Encrypts [payload] (an encoded envelope) once for the whole community.
  CommunityBlob communityEncrypt(String communityId, List<int> payload, {DateTime? now}) =>
      using((a) {
        final keyId = a<Uint32>();
        final blob = _withBuffer(
            a,
            (out) => _lib.spots_community_encrypt(_handle, _str(a, communityId),
                _bytes(a, payload), payload.length, _ms(now), out, keyId));
        return CommunityBlob(blob, keyId.value);
      });

  /// Decrypts a community blob from the sender device its row names.
  CommunityReceived communityDecrypt(
          String communityId, String agentId, int deviceId, List<int> blob, {DateTime? now}) =>
      using((a) {
        final info = a<SpotsBuffer>();
        try {
          final plaintext = _withBuffer(
              a,
              (out) => _lib.spots_community_decrypt(_handle, _str(a, communityId),
                  _str(a, agentId), deviceId, _bytes(a, blob), blob.length, _ms(now), out, info));
          final json = jsonDecode(utf8.decode(info.ref.len == 0
              ? const <int>[]
              : info.ref.data.asTypedList(info.ref.len))) as Map<String, dynamic>;
          return json['kind'] == 'missing_seed'
              ? MissingSeed(RepairRequest._fromJson(json))
              : CommunityMessage(plaintext, json);
        } finally {
          _lib.spots_buffer_free(info);
        }
      });

  /// Answers a `sender_key_request_v1` DM (its plaintext [request]) from a member device
  /// (check the membership first): the `re_share_v1` row to post.
  ShareRow answerSenderKeyRequest(String agentId, int deviceId, List<int> request,
          {DateTime? now}) =>
      using((a) => ShareRow.fromJson(_json(
              a,
              (out) => _lib.spots_community_answer_sender_key_request(_handle, _str(a, agentId),
                  deviceId, _bytes(a, request), request.length, _ms(now), out))
          as Map<String, dynamic>));

  static String get version => _lib.spots_core_version().cast<Utf8>().toDartString();
}
